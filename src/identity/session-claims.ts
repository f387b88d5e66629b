// The shape of a Portcullis session token, shared by the issuer (sessions.ts) and by the
// verifiers that must refuse to mistake one for a federation proof.
import type { AuthnFacts } from './types.ts';

/** JOSE `typ` of session tokens (RFC 8725 §3.11 explicit typing). */
export const SESSION_TOKEN_TYPE = 'pcx-session+jwt';
/** Hard cap on a session token's lifetime, whatever the configuration asks. */
export const SESSION_TTL_CAP_MS = 15 * 60_000;

export interface SessionClaims {
  iss: string;
  /** The broker itself (= iss): a session token is for no one else. */
  aud: string;
  sub: string;
  jti: string;
  iat: number;
  exp: number;
  authn: AuthnFacts;
  /**
   * Identity attributes verified at login (e.g. `repository`, `ref` from the proof), for the
   * decision context. Facts about the caller, never grants.
   */
  attrs?: Record<string, string | number | boolean>;
}
