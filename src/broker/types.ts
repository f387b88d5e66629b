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
  /** Lease writes committed in groups (default) or each in its own transaction (the benchmark's baseline). */
  leaseWriteBatching?: boolean;
}
