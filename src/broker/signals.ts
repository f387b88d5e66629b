// Shared Signals (docs/signals.md) wired to the broker: the receiver's effects go through the
// existing revocation paths (revocation.ts: sessions and leases, which other replicas and live
// gateway sessions hear about; grants ended as suspension ends them), and the transmitter hears
// this replica's own admin records of revocations and pushes them out as CAEP events.
import type { AuditLog } from '../audit/log.ts';
import type { AuditRecord } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { OutboundFetch } from '../common/outbound.ts';
import type { PortcullisConfig } from '../config/types.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { ReplayRepository } from '../identity/ports.ts';
import { JtiReplayStore } from '../identity/replay.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { AccessService } from '../access/index.ts';
import { producerOf } from '../identity/binding.ts';
import { PORTCULLIS_BUNDLE } from '../identity/trusts/spiffe/config.ts';
import type { SignalFacts } from '../signals/facts.ts';
import { SIGNAL_REASON_PREFIX, SignalReceiver, type PushResult } from '../signals/receiver.ts';
import { SignalTransmitter, type Emission } from '../signals/transmitter.ts';
import type { SubjectTrust } from '../signals/subjects.ts';
import { ssfConfiguration } from '../signals/metadata.ts';
import { revokeBySelector } from './revocation.ts';
import { DEFAULT_LIMITS } from '../config/server.ts';

export interface SignalsDeps {
  config: PortcullisConfig;
  issuer: string;
  clock: Clock;
  audit: AuditLog;
  identities: IdentityRegistry;
  sessions: SessionService;
  credentials: CredentialService;
  access: AccessService;
  signalFacts: SignalFacts;
  replay: ReplayRepository;
  keyring: Keyring;
  outbound: OutboundFetch;
  log: (msg: string) => void;
}

/** The admin records that are a revocation Portcullis made, as the event to transmit (or undefined). */
export function emissionOf(r: AuditRecord): Emission | undefined {
  if (r.stream !== 'admin' || r.subject === undefined) return undefined;
  const reason = typeof r.payload.reason === 'string' ? r.payload.reason : '';
  // A revocation a received signal caused is not echoed back out (two installations would loop).
  if (reason.startsWith(SIGNAL_REASON_PREFIX)) return undefined;
  switch (r.type) {
    case 'identity.suspended':
    case 'identity.offboarded':
    case 'session.revoked':
      return { event: 'session-revoked', identityId: r.subject, reason: reason || r.type };
    case 'apikey.revoked':
      return { event: 'credential-change', identityId: r.subject, reason: reason || r.type, credentialType: 'api-key', changeType: 'revoke' };
    default:
      return undefined;
  }
}

export class Signals {
  readonly #d: SignalsDeps;
  readonly #receiver: SignalReceiver | undefined;
  readonly #transmitter: SignalTransmitter | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(d: SignalsDeps) {
    this.#d = d;
    const cfg = d.config.signals;
    if (cfg?.receiver) {
      const trusts = new Map<string, SubjectTrust>(
        d.config.trusts.map((t) => {
          const template = producerOf(t, PORTCULLIS_BUNDLE)?.template;
          const issuer = (t as { issuer?: unknown }).issuer;
          return [t.name, { name: t.name, ...(typeof issuer === 'string' && { issuer }), ...(template !== undefined && { template }) }];
        }),
      );
      this.#receiver = new SignalReceiver({
        transmitters: cfg.receiver.transmitters,
        audience: cfg.receiver.audience ?? d.issuer,
        maxAgeMs: cfg.receiver.max_age_ms,
        leewayMs: cfg.receiver.leeway_ms,
        trusts,
        directory: { get: (id) => d.identities.get(id) },
        replay: new JtiReplayStore(d.replay),
        facts: d.signalFacts,
        clock: d.clock,
        audit: d.audit,
        fetch: d.outbound,
        unauthenticated: { limit: (d.config.limits ?? DEFAULT_LIMITS).login.per_address, maxTracked: (d.config.limits ?? DEFAULT_LIMITS).login.max_tracked },
        endAccess: (id, reason) => this.#endAccess(id, reason),
      });
    }
    if (cfg?.transmitter) {
      const t = cfg.transmitter;
      const transmitter = new SignalTransmitter({
        receivers: t.receivers,
        issuer: d.issuer,
        sign: (claims, typ) => d.keyring.signJwt('token', claims, { typ }),
        fetch: d.outbound,
        clock: d.clock,
        audit: d.audit,
        maxAttempts: t.max_attempts,
        backoffBaseMs: t.backoff_base_ms,
        timeoutMs: t.timeout_ms,
        log: d.log,
      });
      this.#transmitter = transmitter;
      // This replica's own committed records: each revocation is transmitted once, by the replica that made it.
      this.#unsubscribe = d.audit.onAppend((records) => {
        for (const r of records) {
          const e = emissionOf(r);
          if (e) transmitter.emit(e);
        }
      });
    }
  }

  /** Sessions (every replica refuses them; live gateway sessions end), leases and active grants of the identity. */
  async #endAccess(identityId: string, reason: string): Promise<void> {
    const d = this.#d;
    await revokeBySelector(d, 'system', { identity: identityId }, reason);
    await d.access.endAllGrantsOf(identityId, 'system', reason);
  }

  /** One RFC 8935 push; without a configured receiver, every push is refused (nobody is trusted). */
  async push(req: { authorization: string | undefined; contentType: string | undefined; body: unknown; sourceIp: string }): Promise<PushResult> {
    if (this.#receiver) return this.#receiver.push(req);
    const description = 'this server has no signals receiver configured (signals.receiver)';
    await this.#d.audit.append({ stream: 'authn', type: 'signal.refused', actor: 'anonymous', payload: { source_ip: req.sourceIp, err: 'authentication_failed', description } });
    return { status: 400, err: 'authentication_failed', description };
  }

  metadata(): Record<string, unknown> {
    return ssfConfiguration(this.#d.issuer, this.#d.config.signals);
  }

  /** Waits for queued deliveries (tests). */
  idle(): Promise<void> {
    return this.#transmitter?.idle() ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    await this.#transmitter?.stop();
  }
}
