// The shapes the broker's callers see: the proved caller of a request, a login's result, the
// options a broker is opened with.
import type { Clock } from '../common/clock.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { Identity } from '../inventory/identities.ts';

/** The caller of an API request, as proved by its session token. */
export interface SessionContext {
  identity: Identity;
  authn: AuthnFacts;
  claims: Record<string, string | number | boolean>;
  jti: string;
  expiresAt: number;
}

/**
 * Who asks the authorizing layer: the proved session and the client's address. Every
 * administrative method of the broker takes one and decides with Cedar before acting.
 */
export interface Caller extends SessionContext {
  sourceIp: string;
}

export interface LoginResult {
  session_token: string;
  token_type: 'Bearer';
  expires_at: string;
  identity: Identity;
}

export interface BrokerOptions {
  clock?: Clock;
  /** URL the broker is reached at; `iss` of its tokens. */
  issuer?: string;
  /** Where `PORTCULLIS_MASTER_KEY` and targets' `password_env` secrets are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  log?: (msg: string) => void;
  /**
   * How lease writes are committed (benchmarks, tests): in groups by the store's default writer,
   * in groups by a worker thread (`worker`) or on the store's connection (`inline`), or each in
   * its own transaction (`per-write`, as before issue #9: the benchmark's baseline).
   */
  leaseWrites?: 'per-write' | 'inline' | 'worker';
  /** PostgreSQL store: run pending migrations on open (default) or refuse to start while any is pending. */
  migrate?: boolean;
}
