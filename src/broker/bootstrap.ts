// The first administrator: the first start of a real server creates `user:admin` and a one-time
// secret; exchanging the secret for an admin session spends it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { AuthenticationFailed } from '../common/errors.ts';
import type { UnitOfWork } from '../store/ports.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { LoginResult } from './types.ts';
import type { BootstrapStore } from './ports.ts';

const ADMIN_ROLE = { type: 'Role', id: 'portcullis-admin' };
const BOOTSTRAP_ADMIN = 'user:admin';

export interface BootstrapDeps {
  /** Where the secret's hash is kept (`store.bootstrap`). */
  secrets: BootstrapStore;
  /** Creating or resetting the secret checks and writes as one unit (the store). */
  unitOfWork: UnitOfWork;
  clock: Clock;
  /** Configured boundaries: the admin goes in `platform` if there is one, else the first. */
  boundaries: readonly string[];
  identities: IdentityRegistry;
  sessions: SessionService;
  audit: AuditLog;
}

export class Bootstrap {
  readonly #d: BootstrapDeps;

  constructor(deps: BootstrapDeps) {
    this.#d = deps;
  }

  /**
   * The first start of a real server creates `user:admin` (Role portcullis-admin) and a one-time
   * bootstrap secret. Returns the secret the first time only.
   */
  async create(): Promise<string | undefined> {
    const { secrets, unitOfWork, clock, boundaries, identities, audit } = this.#d;
    const secret = `pcx_bootstrap_${randomBytes(24).toString('base64url')}`;
    const created = await unitOfWork.transaction(async () => {
      // Two replicas starting at once on an empty store: one creates, the other sees it.
      await unitOfWork.lock('broker:bootstrap');
      if ((await secrets.get()) !== undefined) return false;
      await identities.declare({ id: BOOTSTRAP_ADMIN, kind: 'user', boundary: boundaries.includes('platform') ? 'platform' : boundaries[0]!, environment: 'control-plane', owner: BOOTSTRAP_ADMIN, purpose: 'first administrator (bootstrap)', parents: [ADMIN_ROLE], bound_trusts: [] }, 'api');
      return secrets.create(sha256(secret), clock.now());
    });
    if (!created) return undefined;
    await audit.append({ stream: 'admin', type: 'bootstrap.created', actor: 'system', subject: BOOTSTRAP_ADMIN, payload: { note: 'one-time bootstrap credential issued on first start' } });
    return secret;
  }

  /**
   * The way back in when the only admin session is lost (`server --reset-bootstrap`, server
   * stopped): a new one-time secret replaces the stored hash, so any earlier secret — spent or
   * not — is void; `user:admin` is re-declared if it was removed. Audited in the admin stream.
   */
  async reset(): Promise<string> {
    const { secrets, unitOfWork, clock, boundaries, identities, audit } = this.#d;
    const secret = `pcx_bootstrap_${randomBytes(24).toString('base64url')}`;
    const existed = await unitOfWork.transaction(async () => {
      await unitOfWork.lock('broker:bootstrap');
      const had = (await secrets.get()) !== undefined;
      if (identities.get(BOOTSTRAP_ADMIN) === undefined) {
        await identities.declare({ id: BOOTSTRAP_ADMIN, kind: 'user', boundary: boundaries.includes('platform') ? 'platform' : boundaries[0]!, environment: 'control-plane', owner: BOOTSTRAP_ADMIN, purpose: 'first administrator (bootstrap)', parents: [ADMIN_ROLE] }, 'api');
      }
      await secrets.replace(sha256(secret), clock.now());
      return had;
    });
    await audit.append({ stream: 'admin', type: 'bootstrap.reset', actor: 'system', subject: BOOTSTRAP_ADMIN, payload: { note: 'bootstrap credential reset from the command line with the server stopped; any earlier one is void', replaced_existing: existed } });
    return secret;
  }

  /** Exchanges the one-time bootstrap secret for an admin session; it cannot be used twice. */
  async login(secret: string, sourceIp: string): Promise<LoginResult> {
    const { secrets, clock, identities, sessions, audit } = this.#d;
    const row = await secrets.get();
    const ok = row !== undefined && row.usedAt === undefined && timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(sha256(secret), 'hex'));
    // Spending is the store's compare-and-set: of two logins racing with the secret, one wins.
    const spent = ok && (await secrets.spend(row!.hash, clock.now()));
    if (!spent) {
      const reason = row?.usedAt !== undefined || ok ? 'bootstrap_used' : 'bad_bootstrap';
      await audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason, proof: 'bootstrap', source_ip: sourceIp } });
      throw new AuthenticationFailed(reason, 'bootstrap credential rejected');
    }
    const identity = identities.require(BOOTSTRAP_ADMIN);
    const facts: AuthnFacts = { method: 'bootstrap', trust: 'bootstrap', mfa: false, assurance: 'low', auth_time: Math.floor(clock.now() / 1000) };
    const session = await sessions.issue({ identityId: identity.id, facts });
    await audit.append({ stream: 'authn', type: 'authn.success', actor: identity.id, boundary: identity.boundary, payload: { method: 'bootstrap', jti: session.jti, source_ip: sourceIp, note: 'bootstrap credential used; it is now spent' } });
    return { session_token: session.token, token_type: 'Bearer', expires_at: new Date(session.expiresAt).toISOString(), identity };
  }
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
