// Reason codes of failed authentication. They go to the authn audit stream (the caller only
// sees a generic 401), so they are precise and stable: dashboards and alerts key on them.
import { AuthenticationFailed } from '../common/errors.ts';

export type AuthnReason =
  // token shape and header
  | 'malformed'
  | 'token_too_large'
  | 'algorithm_not_allowed'
  | 'forbidden_header'
  | 'unknown_crit'
  | 'wrong_token_type'
  // keys and signature
  | 'unknown_kid'
  | 'jwks_unavailable'
  | 'bad_signature'
  // claims
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'unknown_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'claim_mismatch'
  | 'bad_identity_claim'
  | 'non_canonical_identity'
  | 'lifetime_too_long'
  | 'replayed'
  // SPIFFE
  | 'bad_spiffe_id'
  | 'wrong_trust_domain'
  | 'untrusted_chain'
  | 'bad_certificate'
  // API keys and sessions
  | 'unknown_key'
  | 'bad_secret'
  | 'revoked'
  // routing
  | 'no_trust'
  // binding (docs/identity.md): which trust may prove which identity
  | 'reserved_identity'
  | 'identity_kind_mismatch'
  | 'identity_trust_mismatch'
  | 'identity_unbound';

/** Builds the error; `detail` must never contain token contents or secrets. */
export function fail(reason: AuthnReason, detail: string): AuthenticationFailed {
  return new AuthenticationFailed(reason, detail);
}
