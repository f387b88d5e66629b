// Authentication: a trust verifier turns a proof into a verified identity plus the facts of how
// it was proved. Verifiers never decide what the identity may do.

export type IdentityKind = 'workload' | 'agent' | 'service-account' | 'user';
export const IDENTITY_KINDS: readonly IdentityKind[] = ['workload', 'agent', 'service-account', 'user'];

/** How an identity was proved: the methods of the registered trust kinds and the built-in proofs (trusts/registry.ts). */
export type AuthnMethod = import('./trusts/registry.ts').AuthnMethod;

/** How an identity was proved; becomes `context.authn` in every decision. */
export interface AuthnFacts {
  method: AuthnMethod;
  /** Name of the trust that verified the proof. */
  trust: string;
  mfa: boolean;
  /** `high`: asymmetric proof from a federated issuer; `low`: shared secret (API key, bootstrap). */
  assurance: 'low' | 'medium' | 'high';
  /** Seconds since the epoch when the proof was made. */
  auth_time: number;
}

export type Proof =
  | { type: 'jwt'; token: string }
  | { type: 'api_key'; key: string }
  /** DER of the client certificate chain presented over TLS, leaf first. */
  | { type: 'x509'; chain: Uint8Array[] };

export interface VerifiedProof {
  identityId: string;
  kind: IdentityKind;
  facts: AuthnFacts;
  /** Claims copied into the principal's attributes (strings, numbers, booleans only). */
  attributes: Record<string, string | number | boolean>;
  /** Defaults used when the identity is registered on first login. */
  defaults: { boundary?: string; environment?: string; owner?: string };
  /**
   * Set when the proof is a credential Portcullis issued for a named identity (API key, SVID from
   * `bundle: portcullis`): it proves that identity whatever trusts the identity is bound to.
   */
  issued?: true;
  /** Non-secret facts for the authn audit event (issuer, kid, alg, subject, fingerprint). */
  evidence: Record<string, unknown>;
}

export interface TrustVerifier {
  readonly name: string;
  /** The trust kind (trusts/registry.ts), or `apikey` for the built-in API key trust. */
  readonly kind: string;
  /**
   * How a JWT is routed to it: trusts matching the token's `iss` are tried before those matching
   * its `sub` (a JWT-SVID is known by its SPIFFE ID). Trusts that take no JWTs leave it out.
   */
  readonly routesBy?: 'issuer' | 'subject';
  /**
   * Cheap routing check on unverified data: is this proof meant for this trust? For JWTs the
   * hint carries the unverified `iss` and `sub` (JWT-SVIDs are routed by their SPIFFE ID).
   */
  accepts(proof: Proof, hint: { issuer?: string; subject?: string }): boolean;
  /** Verifies the proof completely or throws AuthenticationFailed with a precise reason. */
  verify(proof: Proof): Promise<VerifiedProof>;
}
