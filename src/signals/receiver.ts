// The Shared Signals receiver (RFC 8935 push): authenticates the push, verifies the SET against the
// transmitter it came from (set.ts), resolves its subject within that transmitter's trust only
// (subjects.ts), and applies it: session-revoked / credential-change end the subject's access,
// assurance / device compliance become context facts. Every push, accepted or refused, is one
// `authn` audit record (never the token: its fingerprint).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { OutboundFetch } from '../common/outbound.ts';
import { FixedWindowLimiter, type RateLimit } from '../common/rate-limit.ts';
import { InlineJwks, RemoteJwks, type KeySource } from '../identity/jwks.ts';
import { tokenFingerprint } from '../identity/jwt.ts';
import type { ReplayGuard } from '../identity/jwt.ts';
import type { TransmitterConfig } from './config.ts';
import { SetRefused, verifySet, type SetErrorCode } from './set.ts';
import { resolveSubject, type SubjectDirectory, type SubjectTrust } from './subjects.ts';
import { caepEventOf, effectOf, eventTime } from './events.ts';
import type { SignalFacts } from './facts.ts';

/** Largest SET accepted (the route's body limit too). */
export const MAX_SET_BYTES = 16 * 1024;

export interface ReceiverDeps {
  transmitters: readonly TransmitterConfig[];
  /** `aud` a SET must carry. */
  audience: string;
  maxAgeMs: number;
  leewayMs: number;
  /** The configured trusts, by name, as subject resolution sees them. */
  trusts: ReadonlyMap<string, SubjectTrust>;
  directory: SubjectDirectory;
  replay: ReplayGuard;
  facts: SignalFacts;
  clock: Clock;
  audit: AuditSink;
  fetch?: OutboundFetch;
  /**
   * Pushes that carry no transmitter's secret, per source address (the login limit): beyond it they
   * are answered 429 and audited once per window, so a flood cannot become an audit flood.
   */
  unauthenticated: { limit: RateLimit; maxTracked: number };
  /** Ends every session, grant and lease of the identity (live gateway sessions with them). */
  endAccess(identityId: string, reason: string): Promise<void>;
}

export type PushResult = { status: 202 } | { status: 400; err: SetErrorCode; description: string } | { status: 429; retryAfterS: number };

interface Bound {
  config: TransmitterConfig;
  digest: Buffer;
  keys: KeySource;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export class SignalReceiver {
  readonly #d: ReceiverDeps;
  readonly #bound: Bound[];
  readonly #anonymous: FixedWindowLimiter;

  constructor(deps: ReceiverDeps) {
    this.#d = deps;
    this.#anonymous = new FixedWindowLimiter(deps.unauthenticated.limit, deps.unauthenticated.maxTracked, () => deps.clock.now());
    this.#bound = deps.transmitters.map((t) => ({
      config: t,
      digest: digest(t.bearer),
      keys: t.jwks !== undefined ? new InlineJwks(t.jwks) : new RemoteJwks(t.jwks_uri!, { clock: deps.clock, ...(deps.fetch && { fetch: deps.fetch }) }),
    }));
  }

  /** The transmitter whose push secret the `Authorization` header carries (every one compared, in constant time). */
  #authenticate(authorization: string | undefined): Bound | undefined {
    const m = /^Bearer ([\x21-\x7e]{1,1024})$/.exec(authorization ?? '');
    if (!m) return undefined;
    const got = digest(m[1]!);
    let hit: Bound | undefined;
    for (const b of this.#bound) if (timingSafeEqual(got, b.digest)) hit = b;
    return hit;
  }

  /** One RFC 8935 push: 202, or 400 with its `err`. */
  async push(req: { authorization: string | undefined; contentType: string | undefined; body: unknown; sourceIp: string }): Promise<PushResult> {
    const bound = this.#authenticate(req.authorization);
    const token = typeof req.body === 'string' ? req.body.trim() : '';
    const record: Record<string, unknown> = { source_ip: req.sourceIp, ...(token.length > 0 && { token_fingerprint: tokenFingerprint(token) }) };
    if (!bound) {
      const v = this.#anonymous.hit(`ip:${req.sourceIp}`);
      if (!v.allowed) {
        if (v.firstRefusal) await this.#audit('signal.rate_limited', undefined, { source_ip: req.sourceIp, limit: this.#anonymous.limit.requests, window_seconds: Math.round(this.#anonymous.limit.window_ms / 1000) });
        return { status: 429, retryAfterS: v.retryAfterS };
      }
    }
    try {
      if (!bound) throw new SetRefused('authentication_failed', 'the push is not authenticated: send Authorization: Bearer with the secret configured for this transmitter');
      record.transmitter = bound.config.name;
      const type = (req.contentType ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/secevent+jwt') throw new SetRefused('invalid_request', 'Content-Type must be application/secevent+jwt (RFC 8935 §2)');
      if (token.length === 0) throw new SetRefused('invalid_request', 'the body is empty: send the SET');
      const { clock } = this.#d;
      const set = await verifySet(token, {
        transmitter: bound.config.name,
        issuer: bound.config.issuer,
        audience: this.#d.audience,
        algorithms: bound.config.algorithms,
        keys: (h) => bound.keys.getKey(h),
        nowSeconds: Math.floor(clock.now() / 1000),
        maxAgeSeconds: Math.floor(this.#d.maxAgeMs / 1000),
        leewaySeconds: Math.floor(this.#d.leewayMs / 1000),
        replay: this.#d.replay,
      });
      record.jti = set.jti;
      const [uri, payload] = Object.entries(set.claims.events)[0]!;
      record.event = uri.slice(0, 200);
      const event = caepEventOf(uri);
      if (event === undefined) {
        // SSF: a receiver ignores event types it does not act on; accepted so the transmitter does not retry.
        await this.#audit('signal.ignored', bound, record);
        return { status: 202 };
      }
      const effect = effectOf(event, payload);
      const trust = this.#d.trusts.get(bound.config.trust);
      if (!trust) throw new SetRefused('access_denied', `trust ${bound.config.trust} is not configured`);
      const subject = resolveSubject(set.claims.sub_id ?? payload.subject, trust, this.#d.directory);
      record.subject_format = subject.format;
      if (subject.session) record.subject_session = subject.session;
      const at = eventTime(payload, set.iat);
      record.event_time = new Date(at * 1000).toISOString();
      if (effect.kind === 'end_access') {
        await this.#d.endAccess(subject.identityId, `${SIGNAL_REASON_PREFIX}${event} from transmitter ${bound.config.name}`);
        record.effect = 'access_ended';
      } else {
        const kept = await this.#d.facts.record({ identityId: subject.identityId, kind: effect.fact, value: effect.value, eventAt: at, transmitter: bound.config.name });
        record.effect = kept ? `${effect.fact}=${effect.value}` : 'older_than_kept';
      }
      await this.#audit('signal.received', bound, record, subject.identityId);
      return { status: 202 };
    } catch (e) {
      if (!(e instanceof SetRefused)) throw e;
      await this.#audit('signal.refused', bound, { ...record, err: e.err, description: e.message });
      return { status: 400, err: e.err, description: e.message };
    }
  }

  async #audit(type: string, bound: Bound | undefined, payload: Record<string, unknown>, subject?: string): Promise<void> {
    await this.#d.audit.append({ stream: 'authn', type, actor: bound ? `ssf:${bound.config.name}` : 'anonymous', ...(subject !== undefined && { subject }), payload });
  }
}

/** Revocations a received signal caused carry this reason prefix: the transmitter does not echo them back out. */
export const SIGNAL_REASON_PREFIX = 'shared signal: ';
