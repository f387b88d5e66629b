// The validated shape of portcullis.yaml. config/load.ts turns hostile YAML into these types or
// fails naming the path of the bad field.
import type { JsonWebKey } from 'node:crypto';
import type { IdentityKind } from '../identity/types.ts';
import type { ResourceFacts } from '../policy/entities.ts';
import type { TargetConfig } from '../credentials/config.ts';
import type { HumanOidcTrustConfig } from '../identity/trusts/oidc-human/config.ts';
import type { AccessConfig } from '../access/index.ts';
import type { LimitsConfig, ListenTimeouts, MetricsConfig } from './server.ts';

export interface TrustDefaults {
  boundary?: string;
  environment?: string;
  owner?: string;
  /** Declares that this trust's identity template may overlap another's (both must say so; binding still holds). */
  shared_namespace?: boolean;
}

/** Checks every JWT trust applies to the tokens it accepts (identity/jwt.ts validateJwt). */
export interface TokenChecks {
  /** A token whose `exp - iat` exceeds this is refused (`max_token_lifetime`; default 24 h when left out). */
  max_token_lifetime_seconds?: number;
  /** `reject`: a `jti` seen before within its lifetime is refused (and a token without one). Default `allow`. */
  replay?: 'allow' | 'reject';
}

export interface OidcTrustConfig extends TrustDefaults, TokenChecks {
  name: string;
  kind: 'oidc';
  issuer: string;
  /** Exactly one of jwks_uri / jwks. */
  jwks_uri?: string;
  jwks?: { keys: JsonWebKey[] };
  audiences: string[];
  /** Asymmetric JWS algorithms only (RS256, PS256, ES256, ES384, EdDSA, …). */
  algorithms: string[];
  /** Claims that must equal these values. */
  require: Record<string, string | number | boolean>;
  /** Template over claims, e.g. `workload:github/{repository}`. */
  identity: string;
  identity_kind: IdentityKind;
  /** Claims copied into the principal's attributes. */
  attributes: string[];
  /** Allowed clock skew in seconds (default 30, at most 300). */
  leeway_seconds: number;
}

export interface SpiffeTrustConfig extends TrustDefaults, TokenChecks {
  name: string;
  kind: 'spiffe';
  trust_domain: string;
  /** Path of a SPIFFE bundle (JWKS with `use: jwt-svid` / `use: x509-svid` keys), resolved against the config file's folder; or `portcullis` for Portcullis' own CA. */
  bundle: string;
  /** Audiences accepted in JWT-SVIDs (default: ["portcullis"]). */
  audiences: string[];
  identity_kind: IdentityKind;
  leeway_seconds: number;
}

/** Humans signing in through the organisation's OpenID provider (validated by identity/human-oidc-config.ts). */
export type { HumanOidcTrustConfig };

export type TrustConfig = OidcTrustConfig | SpiffeTrustConfig | HumanOidcTrustConfig;

export interface IdentityConfig {
  id: string;
  kind: IdentityKind;
  owner?: string;
  purpose?: string;
  boundary: string;
  environment: string;
  labels: Record<string, string>;
  /** Team/Role entity ids this identity is a member of. */
  parents: { type: string; id: string }[];
  /**
   * The trusts allowed to prove it: as declared (`trusts:`), or else the one trust whose template
   * can produce its id, or none (only credentials Portcullis issues for it). Resolved at load.
   */
  trusts: string[];
}

/** A declared resource is exactly what the policy domain makes an entity from. */
export type ResourceConfig = ResourceFacts;

export interface BridgeConfig {
  /** Boundary a principal comes from. */
  from: string;
  /** Boundary of the resource it may reach. */
  to: string;
  /** Actions allowed across (empty: any action still subject to policy). */
  actions: string[];
  reason: string;
}

export interface PortcullisConfig {
  /** Folder the config file lives in; relative paths resolve against it. */
  baseDir: string;
  listen: {
    host: string;
    port: number;
    tls?: { cert: string; key: string; client_ca?: string };
    /** Peers whose X-Forwarded-For is believed (CIDRs); from anyone else it is ignored. */
    trusted_proxies?: string[];
    timeouts?: ListenTimeouts;
  };
  data_dir: string;
  boundaries: string[];
  bridges: BridgeConfig[];
  trusts: TrustConfig[];
  identities: IdentityConfig[];
  resources: ResourceConfig[];
  /** Files of .cedar policies (a directory is expanded to its .cedar files at load). */
  policies: string[];
  /** Optional schema extension in Cedar schema syntax, merged with the built-in schema. */
  schema_extension?: string;
  engine: 'wasm' | 'compiled';
  session: { ttl_ms: number };
  apikeys: { max_ttl_ms: number; rotation_ms: number };
  /** `witness`: publish each signed checkpoint outside the store (file resolved against the config's directory). */
  audit: { fail_closed: boolean; checkpoint_every: number; checkpoint_interval_ms: number; witness?: { file?: string; url?: string } };
  /** Credential targets (PostgreSQL, SSH hosts, APIs, SPIFFE), validated by credentials/config.ts. */
  targets: TargetConfig[];
  /** Access requests, approvals, grants, break-glass, webhooks (validated by access/config.ts). */
  access: AccessConfig;
  /** Private networks outbound calls (webhooks, jwks_uri, OIDC, sinks) may reach; default none. */
  outbound: { allow_private: string[] };
  /** Rate limits on the authentication endpoints (defaults in config/server.ts). */
  limits?: LimitsConfig;
  /** Where and behind what `/metrics` is served. */
  metrics?: MetricsConfig;
}
