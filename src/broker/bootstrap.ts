// The first administrator: the first start of a real server creates `user:admin` and a one-time
// secret; exchanging the secret for an admin session spends it.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { AuthenticationFailed } from '../common/errors.ts';
import type { Db } from '../store/sqlite/db.ts';
import { migrate } from '../store/sqlite/db.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { LoginResult } from './types.ts';

const ADMIN_ROLE = { type: 'Role', id: 'portcullis-admin' };
const BOOTSTRAP_ADMIN = 'user:admin';

export function migrateBootstrap(db: Db): void {
  migrate(db, 'broker', [
    { version: 1, up: 'CREATE TABLE broker_bootstrap (id INTEGER PRIMARY KEY CHECK (id = 1), hash TEXT NOT NULL, created_at TEXT NOT NULL, used_at TEXT)' },
  ]);
}

export interface BootstrapDeps {
  db: Db;
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
    const { db, clock, boundaries, identities, audit } = this.#d;
    const row = db.prepare('SELECT id FROM broker_bootstrap').get();
    if (row) return undefined;
    const secret = `pcx_bootstrap_${randomBytes(24).toString('base64url')}`;
    await identities.declare({ id: BOOTSTRAP_ADMIN, kind: 'user', boundary: boundaries.includes('platform') ? 'platform' : boundaries[0]!, environment: 'control-plane', owner: BOOTSTRAP_ADMIN, purpose: 'first administrator (bootstrap)', parents: [ADMIN_ROLE], bound_trusts: [] }, 'api');
    db.prepare('INSERT INTO broker_bootstrap (id, hash, created_at) VALUES (1, ?, ?)').run(sha256(secret), new Date(clock.now()).toISOString());
    await audit.append({ stream: 'admin', type: 'bootstrap.created', actor: 'system', subject: BOOTSTRAP_ADMIN, payload: { note: 'one-time bootstrap credential issued on first start' } });
    return secret;
  }

  /**
   * The way back in when the only admin session is lost (`server --reset-bootstrap`, server
   * stopped): a new one-time secret replaces the stored hash, so any earlier secret — spent or
   * not — is void; `user:admin` is re-declared if it was removed. Audited in the admin stream.
   */
  async reset(): Promise<string> {
    const { db, clock, boundaries, identities, audit } = this.#d;
    const secret = `pcx_bootstrap_${randomBytes(24).toString('base64url')}`;
    const existed = db.prepare('SELECT id FROM broker_bootstrap').get() !== undefined;
    if (identities.get(BOOTSTRAP_ADMIN) === undefined) {
      await identities.declare({ id: BOOTSTRAP_ADMIN, kind: 'user', boundary: boundaries.includes('platform') ? 'platform' : boundaries[0]!, environment: 'control-plane', owner: BOOTSTRAP_ADMIN, purpose: 'first administrator (bootstrap)', parents: [ADMIN_ROLE] }, 'api');
    }
    const now = new Date(clock.now()).toISOString();
    db.prepare('INSERT INTO broker_bootstrap (id, hash, created_at, used_at) VALUES (1, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at, used_at = NULL').run(sha256(secret), now);
    await audit.append({ stream: 'admin', type: 'bootstrap.reset', actor: 'system', subject: BOOTSTRAP_ADMIN, payload: { note: 'bootstrap credential reset from the command line with the server stopped; any earlier one is void', replaced_existing: existed } });
    return secret;
  }

  /** Exchanges the one-time bootstrap secret for an admin session; it cannot be used twice. */
  async login(secret: string, sourceIp: string): Promise<LoginResult> {
    const { db, clock, identities, sessions, audit } = this.#d;
    const row = db.prepare('SELECT hash, used_at FROM broker_bootstrap WHERE id = 1').get() as { hash: string; used_at: string | null } | undefined;
    const ok = row !== undefined && row.used_at === null && timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(sha256(secret), 'hex'));
    if (!ok) {
      const reason = row?.used_at ? 'bootstrap_used' : 'bad_bootstrap';
      await audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason, proof: 'bootstrap', source_ip: sourceIp } });
      throw new AuthenticationFailed(reason, 'bootstrap credential rejected');
    }
    db.prepare('UPDATE broker_bootstrap SET used_at = ? WHERE id = 1').run(new Date(clock.now()).toISOString());
    const identity = identities.require(BOOTSTRAP_ADMIN);
    const facts: AuthnFacts = { method: 'bootstrap', trust: 'bootstrap', mfa: false, assurance: 'low', auth_time: Math.floor(clock.now() / 1000) };
    const session = await sessions.issue({ identityId: identity.id, facts });
    await audit.append({ stream: 'authn', type: 'authn.success', actor: identity.id, boundary: identity.boundary, payload: { method: 'bootstrap', jti: session.jti, source_ip: sourceIp, note: 'bootstrap credential used; it is now spent' } });
    return { session_token: session.token, token_type: 'Bearer', expires_at: new Date(session.expiresAt).toISOString(), identity };
  }
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
