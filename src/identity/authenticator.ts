// Routes a proof to the one trust meant to verify it, on unverified routing data only (the
// chosen trust then verifies everything): a JWT by its `iss` (JWT-SVIDs by their SPIFFE `sub`),
// an API key to the apikey trust, a client certificate chain to the SPIFFE trust of its domain.
// Recording, inventory and suspension checks belong to the caller.
import { errors as joseErrors } from 'jose';
import { AuthenticationFailed } from '../common/errors.ts';
import type { Proof, TrustVerifier, VerifiedProof } from './types.ts';
import { fail } from './reasons.ts';
import { mapJoseError, parseJwt } from './jwt.ts';
import { SESSION_TOKEN_TYPE } from './session-claims.ts';

export interface AuthenticatorOptions {
  /** The broker's own issuer: its session tokens are never accepted as proofs. */
  sessionIssuer?: string;
}

export class Authenticator {
  readonly verifiers: readonly TrustVerifier[];
  readonly #sessionIssuer: string | undefined;

  constructor(verifiers: readonly TrustVerifier[], options: AuthenticatorOptions = {}) {
    const names = new Set<string>();
    for (const v of verifiers) {
      if (names.has(v.name)) throw new TypeError(`two trusts are named "${v.name}"`);
      names.add(v.name);
    }
    this.verifiers = [...verifiers];
    this.#sessionIssuer = options.sessionIssuer;
  }

  /** The trust a proof is routed to (throws AuthenticationFailed when none). */
  route(proof: Proof): TrustVerifier {
    if (proof === null || typeof proof !== 'object') throw fail('malformed', 'proof is not an object');
    switch (proof.type) {
      case 'jwt': {
        const jwt = parseJwt(proof.token); // size cap and shape before anything else
        const issuer = typeof jwt.claims.iss === 'string' ? jwt.claims.iss : undefined;
        const subject = typeof jwt.claims.sub === 'string' ? jwt.claims.sub : undefined;
        if (jwt.header.typ === SESSION_TOKEN_TYPE || (issuer !== undefined && issuer === this.#sessionIssuer)) {
          throw fail('wrong_token_type', 'a token this broker issued (session or access token) is not an identity proof');
        }
        const hint = { ...(issuer !== undefined ? { issuer } : {}), ...(subject !== undefined ? { subject } : {}) };
        const v = this.verifiers.find((t) => t.routesBy === 'issuer' && t.accepts(proof, hint)) ?? this.verifiers.find((t) => t.routesBy === 'subject' && t.accepts(proof, hint));
        if (v === undefined) throw fail('unknown_issuer', issuer === undefined ? 'token has no iss and no trusted SPIFFE ID' : `no trust for issuer ${issuer.slice(0, 200)}`);
        return v;
      }
      case 'api_key': {
        if (typeof proof.key !== 'string') throw fail('malformed', 'api key is not a string');
        const v = this.verifiers.find((t) => t.accepts(proof, {}));
        if (v === undefined) throw fail('no_trust', 'api keys are not enabled');
        return v;
      }
      case 'x509': {
        if (!Array.isArray(proof.chain) || proof.chain.length === 0) throw fail('malformed', 'no client certificate');
        const v = this.verifiers.find((t) => t.accepts(proof, {}));
        if (v === undefined) throw fail('wrong_trust_domain', 'no SPIFFE trust for this client certificate');
        return v;
      }
      default:
        throw fail('malformed', 'unknown proof type');
    }
  }

  /** Verifies a proof completely, or throws AuthenticationFailed with a precise reason. */
  async authenticate(proof: Proof): Promise<VerifiedProof> {
    const verifier = this.route(proof);
    try {
      return await verifier.verify(proof);
    } catch (e) {
      if (e instanceof AuthenticationFailed) throw e;
      // A library error on hostile input is still an authentication failure, not a 500.
      if (e instanceof joseErrors.JOSEError) throw mapJoseError(e);
      throw e;
    }
  }
}
