// RFC 9068 JWT access tokens (typ at+jwt), bound to one audience and a subset of its scopes, minutes
// long; and the core of RFC 8693 token exchange: a token on a subject's behalf for an actor, whose
// `act` claim records the chain and whose scope is the intersection of what every party may do.
import { jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { Clock } from '../../../common/clock.ts';
import { formatDuration, parseDuration } from '../../../common/duration.ts';
import { AuthenticationFailed, Forbidden, InvalidInput } from '../../../common/errors.ts';
import type { ApiTarget } from './config.ts';
import { fingerprint } from '../../fingerprint.ts';
import { randomPooled } from '../../../crypto/random.ts';
import type { IssueInput, Issued } from '../../service.ts';
import type { CredentialIssuer, IssueRequest, SessionFacts, IssueResult, JwtSigner, Lease, ReconcileResult, RenewResult } from '../../types.ts';

/** RFC 8693 §4.1: the current actor at the top, earlier actors nested inside. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** Actors of a chain, most recent first. */
export function actorsOf(act: ActClaim | undefined): string[] {
  const out: string[] = [];
  for (let a = act; a; a = a.act) out.push(a.sub);
  return out;
}

export interface DelegationParty {
  identityId: string;
  /** What this party may do (subject: its token's scope; actor: what policy allows it). */
  scopes: string[];
}

export interface DelegationInput {
  /** The verified subject token: on whose behalf; `act` when it is already delegated. */
  subject: DelegationParty & { act?: ActClaim };
  /** The verified actor token: who is acting now. */
  actor: DelegationParty;
  /** Scopes asked for; default the whole intersection. Anything outside it is refused, not trimmed. */
  requested?: string[];
  /** Most actors a chain may hold. */
  maxDepth: number;
}

export interface Delegation {
  sub: string;
  scopes: string[];
  act: ActClaim;
  /** Actor ids, most recent first. */
  actors: string[];
  depth: number;
}

/**
 * Pure: computes the delegated token's subject, scope and `act` chain, or throws Forbidden.
 * Attenuation: the result never exceeds the subject's scope nor the actor's, at every hop.
 */
export function delegate(input: DelegationInput): Delegation {
  const prior = actorsOf(input.subject.act);
  const depth = prior.length + 1;
  if (depth > input.maxDepth) {
    throw new Forbidden(`delegation chain of ${depth} actors exceeds the limit of ${input.maxDepth}`, { max_delegation_depth: input.maxDepth });
  }
  const actorScopes = new Set(input.actor.scopes);
  const allowed = [...new Set(input.subject.scopes)].filter((s) => actorScopes.has(s)).sort();
  let scopes = allowed;
  if (input.requested !== undefined) {
    const wider = input.requested.filter((s) => !allowed.includes(s));
    if (wider.length) throw new Forbidden(`token exchange may not widen scope: ${wider.join(' ')} not held by every party`, { scopes: wider });
    scopes = [...new Set(input.requested)].sort();
  }
  if (scopes.length === 0) throw new Forbidden('subject and actor have no scope in common', { scopes: [] });
  const act: ActClaim = { sub: input.actor.identityId, ...(input.subject.act ? { act: input.subject.act } : {}) };
  return { sub: input.subject.identityId, scopes, act, actors: [input.actor.identityId, ...prior], depth };
}

export function parseScopes(raw: unknown, field = 'scopes'): string[] {
  const list = typeof raw === 'string' ? raw.split(' ').filter(Boolean) : raw;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
    throw new InvalidInput(`${field}: expected a non-empty list of scopes`, field);
  }
  return [...new Set(list as string[])].sort();
}

export interface ExchangeInput {
  /** An `api` target: the audience of the new token. */
  target: string;
  /** The verified subject token's party: identity, its token's scopes, its `act` chain, its `jti`. */
  subject: DelegationParty & { act?: ActClaim; jti?: string };
  /** The verified actor token's party: identity and the scopes policy lets it use. */
  actor: DelegationParty;
  /** Requested scopes; default the full intersection. Widening is refused. */
  scopes?: string[];
  ttl?: string | number;
  purpose: string;
  /** The subject's session facts, with the address the exchange came from. */
  session?: SessionFacts;
  sessionId?: string;
  trust?: string;
}

/** What an exchange needs of the credential service: the issuer of a target, the subject token's lease, and issuance. */
export interface ExchangeLeases {
  issuer(target: string): CredentialIssuer;
  introspect(kind: 'api', handle: string): { active: boolean; lease?: Lease } | Promise<{ active: boolean; lease?: Lease }>;
  issue(input: IssueInput): Promise<Issued>;
}

/** RFC 8693 token exchange on an `api` target (AccessTokenIssuer.exchange); refuses any other target. */
export async function exchange(credentials: ExchangeLeases, input: ExchangeInput): Promise<Issued> {
  const issuer = credentials.issuer(input.target);
  if (!(issuer instanceof AccessTokenIssuer)) throw new InvalidInput(`target: ${input.target} is not an api target`, 'target');
  return issuer.exchange(credentials, input);
}

/**
 * A token id: the issue time in ms (6 bytes) and 80 random bits, base64url (22 characters). Unique
 * with a negligible chance of collision, and ordered by issuance: the lease table's (kind, handle)
 * index then grows at its end instead of taking a random page per token.
 */
function newJti(issuedAt: number): string {
  const b = randomPooled(16);
  b.writeUIntBE(Math.max(0, Math.floor(issuedAt)), 0, 6);
  return b.toString('base64url');
}

export interface AccessTokenIssuerOptions {
  target: ApiTarget;
  signer: JwtSigner;
  /** `iss` of every token: the broker's URL. */
  issuer: string;
  clock: Clock;
}

export class AccessTokenIssuer implements CredentialIssuer {
  readonly kind = 'api' as const;
  readonly target: string;
  readonly resourceType = 'Api';
  /** A token is only signed: nothing exists until it is handed out. */
  readonly createsAtTarget = false;
  readonly #cfg: ApiTarget;
  readonly #signer: JwtSigner;
  readonly #iss: string;
  readonly #clock: Clock;

  constructor(opts: AccessTokenIssuerOptions) {
    this.#clock = opts.clock;
    this.#cfg = opts.target;
    this.target = opts.target.name;
    this.#signer = opts.signer;
    this.#iss = opts.issuer;
  }

  get audience(): string {
    return this.#cfg.audience;
  }

  get maxDelegationDepth(): number {
    return this.#cfg.max_delegation_depth;
  }

  /**
   * RFC 8693 token exchange core: a token for `subject` acted on by `actor`, scope attenuated to
   * what both hold, chain recorded in `act`, decided with `context.delegation`, never outliving
   * the subject token's lease, and revoked with it. `credentials` records and issues it.
   */
  async exchange(credentials: ExchangeLeases, input: ExchangeInput): Promise<Issued> {
    let parent: Lease | undefined;
    if (input.subject.jti) {
      const r = await credentials.introspect('api', input.subject.jti);
      parent = r.lease;
      if (parent && !r.active) throw new Forbidden('the subject token has been revoked or has expired');
    }
    const d = delegate({
      subject: input.subject,
      actor: input.actor,
      ...(input.scopes ? { requested: input.scopes } : {}),
      maxDepth: this.maxDelegationDepth,
    });
    let ttl = this.#ttl(input.ttl);
    if (parent) ttl = Math.min(ttl, parent.expiresAt - this.#clock.now());
    if (ttl < 1000) throw new Forbidden('the subject token expires too soon to exchange');
    return credentials.issue({
      identityId: d.sub,
      target: this.target,
      permission: d.scopes.join(' '),
      ttl,
      purpose: input.purpose,
      params: { scopes: d.scopes, act: d.act, ...(parent ? { parent: parent.id } : {}) },
      ...(input.session && { session: input.session }),
      delegation: { actors: d.actors, depth: d.depth },
      actor: input.actor.identityId,
      // Renewals never take it past what its subject's lease may reach, and it ends with that grant.
      ...(parent ? { notAfter: parent.maxExpiresAt } : {}),
      ...(parent?.grantId ? { grantId: parent.grantId } : {}),
      ...(input.sessionId ? { sessionId: input.sessionId } : {}),
      ...(input.trust ? { trust: input.trust } : {}),
    });
  }

  /** The asked lifetime (default: the target's default_ttl), within [1s, max_ttl]. */
  #ttl(asked: string | number | undefined): number {
    const max = this.#cfg.max_ttl_ms;
    if (asked === undefined) return this.#cfg.default_ttl_ms;
    const ms = typeof asked === 'number' ? asked : parseDuration(asked, 'ttl');
    if (!Number.isFinite(ms) || ms < 1000) throw new InvalidInput('ttl: must be at least 1s', 'ttl');
    if (ms > max) throw new InvalidInput(`ttl: ${formatDuration(ms)} exceeds the target's max_ttl of ${formatDuration(max)}`, 'ttl', { max_ttl: formatDuration(max) });
    return ms;
  }

  check(params: Record<string, unknown>, permission: string | undefined): string {
    const scopes = parseScopes(params.scopes ?? permission, 'scopes');
    const unknown = scopes.filter((s) => !this.#cfg.scopes.includes(s));
    if (unknown.length) throw new InvalidInput(`scopes: not offered by ${this.target}: ${unknown.join(' ')}`, 'scopes');
    if (params.act !== undefined && (typeof params.act !== 'object' || params.act === null)) throw new InvalidInput('act: expected an object', 'act');
    if (params.asg !== undefined && (typeof params.asg !== 'string' || !/^asg_[A-Za-z0-9_-]{20}$/.test(params.asg))) throw new InvalidInput('asg: expected an assignment id', 'asg');
    return scopes.join(' ');
  }

  async #sign(lease: Lease, expiresAt: number, params: Record<string, unknown>) {
    const jti = newJti(lease.issuedAt);
    const now = Math.floor(lease.issuedAt / 1000);
    const claims: Record<string, unknown> = {
      iss: this.#iss,
      sub: lease.identityId,
      aud: this.#cfg.audience,
      client_id: typeof params.clientId === 'string' ? params.clientId : lease.identityId,
      scope: lease.permission,
      jti,
      iat: now,
      exp: Math.floor(expiresAt / 1000),
      ...(params.act ? { act: params.act } : {}),
      // The assignment an agent's token was issued under (docs/agents.md): ending it ends the token.
      ...(typeof params.asg === 'string' ? { asg: params.asg } : {}),
    };
    const token = await this.#signer.sign(claims, { typ: 'at+jwt', alg: this.#signer.alg, kid: this.#signer.kid });
    return {
      handle: jti,
      fingerprint: fingerprint(token),
      credential: {
        access_token: token,
        token_type: 'Bearer',
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        expires_in: Math.max(0, Math.floor(expiresAt / 1000) - now),
        scope: lease.permission,
        audience: this.#cfg.audience,
      },
    };
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    const out = await this.#sign(req.lease, req.lease.expiresAt, req.params);
    const act = req.params.act as ActClaim | undefined;
    return {
      ...out,
      params: {
        ...(typeof req.params.clientId === 'string' ? { clientId: req.params.clientId } : {}),
        ...(act ? { act, actors: actorsOf(act) } : {}),
        ...(typeof req.params.parent === 'string' ? { parent: req.params.parent } : {}),
        ...(typeof req.params.asg === 'string' ? { asg: req.params.asg } : {}),
      },
    };
  }

  /** A token cannot be extended: renewal signs a new one; the old one ends via introspection. */
  async renew(lease: Lease, expiresAt: number): Promise<RenewResult> {
    return this.#sign({ ...lease, issuedAt: this.#clock.now() }, expiresAt, lease.params);
  }

  /** Nothing to do at a target: a revoked token fails introspection (service.introspect) and expires in minutes. */
  async revoke(): Promise<void> {}

  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }

  async close(): Promise<void> {}
}

export interface VerifiedAccessToken {
  sub: string;
  scopes: string[];
  clientId: string;
  jti: string;
  act?: ActClaim;
  /** The assignment the token was issued under (claim `asg`), if any. */
  asg?: string;
  claims: JWTPayload;
}

/**
 * What a resource server does with a Portcullis token: verify signature against the broker's JWKS,
 * `typ: at+jwt`, issuer, audience, expiry, and the scopes the endpoint needs.
 */
export async function verifyAccessToken(
  token: string,
  keys: JWTVerifyGetKey,
  opts: { issuer: string; audience: string; requiredScopes?: string[]; clockToleranceSec?: number; currentDate?: Date },
): Promise<VerifiedAccessToken> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys, {
      issuer: opts.issuer,
      audience: opts.audience,
      typ: 'at+jwt',
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id', 'scope'],
      clockTolerance: opts.clockToleranceSec ?? 30,
      ...(opts.currentDate ? { currentDate: opts.currentDate } : {}),
    }));
  } catch (e) {
    throw new AuthenticationFailed('invalid_token', (e as Error).message);
  }
  // jose checks iat's type only: one in the future is refused here, as on every path (issue 8.24).
  const nowS = Math.floor((opts.currentDate?.getTime() ?? Date.now()) / 1000);
  if ((payload.iat as number) > nowS + (opts.clockToleranceSec ?? 30)) throw new AuthenticationFailed('invalid_token', 'iat is in the future');
  const scopes = String(payload.scope).split(' ').filter(Boolean);
  const missing = (opts.requiredScopes ?? []).filter((s) => !scopes.includes(s));
  if (missing.length) throw new Forbidden(`insufficient_scope: ${missing.join(' ')}`, { required: missing });
  return {
    sub: payload.sub!,
    scopes,
    clientId: String(payload.client_id),
    jti: payload.jti!,
    ...(payload.act ? { act: payload.act as ActClaim } : {}),
    ...(typeof payload.asg === 'string' ? { asg: payload.asg } : {}),
    claims: payload,
  };
}
