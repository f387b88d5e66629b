// The validated shape of portcullis.yaml. config/load.ts turns hostile YAML into these types or
// fails naming the path of the bad field.
import type { IdentityKind } from '../identity/types.ts';
import type { ResourceFacts } from '../policy/entities.ts';
import type { TargetConfig } from '../credentials/config.ts';
import type { TrustConfig } from '../identity/trusts/registry.ts';
import type { AccessConfig } from '../access/index.ts';
import type { ReviewsConfig } from '../governance/reviews/config.ts';
import type { LifecycleConfig } from '../governance/lifecycle/config.ts';
import type { LimitsConfig, ListenTimeouts, LogConfig, MetricsConfig } from './server.ts';
import type { StoreConfig } from './store.ts';
import type { AuthzenConfig } from './authzen.ts';
import type { GatewayConfig } from '../gateways/registry.ts';
import type { SignalsConfig } from '../signals/config.ts';

export type { GatewayConfig } from '../gateways/registry.ts';

/** Trust entries: each kind's config type lives with its plug-in (identity/trusts/<kind>/config.ts). */
export type { TokenChecks } from '../identity/trusts/plugin.ts';
export type { TrustConfig } from '../identity/trusts/registry.ts';
export type { OidcTrustConfig } from '../identity/trusts/oidc/config.ts';
export type { SpiffeTrustConfig } from '../identity/trusts/spiffe/config.ts';
export type { HumanOidcTrustConfig } from '../identity/trusts/oidc-human/config.ts';

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
  /** An agent's sponsor (docs/agents.md): set on its profile at load when it has none or another. */
  sponsor?: string;
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
    /** Connections from trusted_proxies start with a PROXY protocol header (v1 or v2) naming the client. */
    proxy_protocol?: boolean;
    timeouts?: ListenTimeouts;
  };
  data_dir: string;
  /** Where state and audit live: SQLite files in data_dir, or a PostgreSQL database shared by replicas. */
  store: StoreConfig;
  /** The URL clients reach Portcullis at (the load balancer's, with replicas): the issuer of its tokens. Default: the listen address. */
  public_url?: string;
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
  /** Session gateways (PostgreSQL, SSH) in front of targets, validated by their kinds' plug-ins (gateways/registry.ts). Absent: none. */
  gateways?: GatewayConfig[];
  /** Access requests, approvals, grants, break-glass, webhooks (validated by access/config.ts). */
  access: AccessConfig;
  /** Access review campaigns: deadline, default action, reminders, schedules (governance/reviews/config.ts). */
  reviews: ReviewsConfig;
  /** Rotation periods, owner offboarding, idle identities (governance/lifecycle/config.ts). */
  lifecycle: LifecycleConfig;
  /** Private networks outbound calls (webhooks, jwks_uri, OIDC, sinks) may reach; default none. */
  outbound: { allow_private: string[] };
  /** Rate limits on the authentication endpoints (defaults in config/server.ts). */
  limits?: LimitsConfig;
  /** Where and behind what `/metrics` is served. */
  metrics?: MetricsConfig;
  /** The operational log (JSON lines on stdout). */
  log: LogConfig;
  /** The decision API for applications (AuthZEN): described resource types, rate limit, page size. */
  authzen: AuthzenConfig;
  /** OpenID Shared Signals / CAEP: transmitters received from, receivers transmitted to (signals/config.ts). Absent: none. */
  signals?: SignalsConfig;
}
