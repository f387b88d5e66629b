// Loads and validates portcullis.yaml. Every error names the path of the bad field; nothing in
// the file is trusted (aliases are bounded, duplicate keys rejected, unknown keys rejected). The
// file's shape is one zod schema (CONFIG_FILE); what depends on other parts of the file, on files
// beside it or on the environment is checked after, naming the field just the same.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { IdentityKind } from '../identity/types.ts';
import { IDENTITY_KINDS } from '../identity/types.ts';
import type { BridgeConfig, GatewayConfig, IdentityConfig, PortcullisConfig, ResourceConfig, TrustConfig } from './types.ts';
import { ConfigError, duration, flag, integer, oneOf, section, text, texts, validateConfig, z } from '../common/validation.ts';
import { TARGETS } from '../credentials/config.ts';
import { ACCESS_CONFIG, resolveAccessConfig } from '../access/config.ts';
import { REVIEWS_CONFIG, resolveReviewsConfig } from '../governance/reviews/config.ts';
import { LIFECYCLE_CONFIG, resolveLifecycleConfig } from '../governance/lifecycle/config.ts';
import { parseCidr } from '../common/outbound.ts';
import { TRUSTS, trustKind } from '../identity/trusts/registry.ts';
import { PORTCULLIS_BUNDLE } from '../identity/trusts/spiffe/config.ts';
import { checkResourceHierarchy } from '../policy/entities.ts';
import { implicitBinding, kindOfId, producerOf, producerProblems, producersOf } from '../identity/binding.ts';
import { LIMITS, LISTEN_TIMEOUTS, LOG, METRICS, TRUSTED_PROXIES, logConfig, metricsConfig } from './server.ts';
import { STORE, storeConfig } from './store.ts';
import { AUTHZEN, CEDAR_TYPE, authzenConfig } from './authzen.ts';
import { GATEWAY_ENTRY, loadGateways } from '../gateways/registry.ts';
import { SIGNALS, signalsConfig } from '../signals/config.ts';

export { ConfigError } from '../common/validation.ts';
export { PORTCULLIS_BUNDLE } from '../identity/trusts/spiffe/config.ts';

const MAX_SESSION_TTL_MS = 15 * 60_000;
const NAME = { pattern: /^[a-z][a-z0-9-]{0,62}$/, hint: 'must be a lowercase name like "platform" or "ci"' };
const ENTITY_TYPE = { pattern: /^[A-Z][A-Za-z0-9_]{0,63}$/, hint: 'must be a Cedar entity type like "Database"' };
const DEFAULT_BOUNDARIES = ['application', 'platform', 'infrastructure', 'ai-platform'];

/** `name: value` pairs (labels, attributes); values become strings. */
const LABELS = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'is not a valid name'),
  z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or boolean' }).transform(String),
);

/** `Team::"payments"` or `{type: Team, id: payments}`. */
const PARENTS = z.array(
  z.union(
    [
      z.string().regex(/^[A-Z][A-Za-z0-9_]*::"[^"]{1,256}"$/).transform((s) => {
        const m = /^([A-Z][A-Za-z0-9_]*)::"([^"]{1,256})"$/.exec(s)!;
        return { type: m[1]!, id: m[2]! };
      }),
      section({ type: text(ENTITY_TYPE), id: text({ max: 256 }) }),
    ],
    { error: 'must be like Team::"payments" or {type: Team, id: payments}' },
  ),
);

const ENVIRONMENT = text({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/, hint: 'must be a short lowercase name like "prod"' });

const WITNESS = section({
  file: text({ max: 1024 }).optional(),
  url: text({ max: 2048 })
    .transform((s, ctx) => {
      if (!URL.canParse(s)) {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
        return z.NEVER;
      }
      const u = new URL(s);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL' });
      if (u.username || u.password) ctx.addIssue({ code: 'custom', message: 'must not carry credentials (user:password@)' });
      if (u.hash) ctx.addIssue({ code: 'custom', message: 'must not have a fragment' });
      return u.href;
    })
    .optional(),
}).refine((w) => w.file !== undefined || w.url !== undefined, 'needs a file, a url, or both');

/** portcullis.yaml as written. Plug-in sections are their plug-ins' schemas; trusts are routed by kind (loadTrusts). */
export const CONFIG_FILE = section({
  boundaries: texts(NAME).optional(),
  listen: section({
    host: text().optional(),
    port: integer(0, 65535).optional(),
    tls: section({ cert: text(), key: text(), client_ca: text().optional() }).optional(),
    trusted_proxies: TRUSTED_PROXIES.optional(),
    proxy_protocol: flag().optional(),
    timeouts: LISTEN_TIMEOUTS,
  })
    .refine((l) => l.proxy_protocol !== true || (l.trusted_proxies ?? []).length > 0, {
      path: ['proxy_protocol'],
      message: 'needs listen.trusted_proxies: the addresses of the load balancers that send the PROXY header (only they are read for one)',
    })
    .optional(),
  bridges: z.array(section({ from: text(NAME), to: text(NAME), actions: texts().optional(), reason: text({ max: 512 }) })).optional(),
  // Each entry is checked by its kind's plug-in (identity/trusts/registry.ts).
  trusts: z.array(z.looseObject({ kind: oneOf(TRUSTS.map((t) => t.kind) as [string, ...string[]]) })).optional(),
  identities: z
    .array(
      section({
        id: text({ pattern: /^[a-z][a-z0-9-]*:\S{1,255}$|^spiffe:\/\/\S+$/, hint: 'must look like "workload:github/acme/api"' }),
        kind: oneOf(IDENTITY_KINDS as [IdentityKind, ...IdentityKind[]]),
        owner: text({ max: 256 }).optional(),
        purpose: text({ max: 1024 }).optional(),
        boundary: text(NAME),
        environment: ENVIRONMENT,
        labels: LABELS.optional(),
        parents: PARENTS.optional(),
        trusts: texts().optional(),
        sponsor: text({ pattern: /^user:\S{1,255}$/, hint: 'the id of a human (user:…) who answers for the agent' }).optional(),
      }).superRefine((o, ctx) => {
        const k = kindOfId(o.id);
        if (k !== undefined && k !== o.kind) ctx.addIssue({ code: 'custom', path: ['kind'], message: `${o.kind} does not match the id ${o.id} (a ${k} id)` });
        if (o.sponsor !== undefined && o.kind !== 'agent') ctx.addIssue({ code: 'custom', path: ['sponsor'], message: `only an agent has a sponsor (this is a ${o.kind})` });
      }),
    )
    .optional(),
  resources: z
    .array(
      section({
        // Any Cedar type: AuthZEN resource types are often lowercase (`user`, `todo`).
        type: text(CEDAR_TYPE),
        id: text({ max: 256 }),
        boundary: text(NAME),
        environment: text({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/ }),
        parents: PARENTS.optional(),
        attributes: LABELS.optional(),
      }),
    )
    .optional(),
  policies: z.union([text(), texts()]).optional(),
  schema_extension: text().optional(),
  session: section({ ttl: duration({ numbers: 'seconds' }).optional() }).optional(),
  apikeys: section({ max_ttl: duration({ numbers: 'seconds' }).optional(), rotation: duration({ numbers: 'seconds' }).optional() }).optional(),
  audit: section({
    fail_closed: flag().optional(),
    checkpoint_every: integer(1, 1_000_000).optional(),
    checkpoint_interval: duration({ numbers: 'seconds' }).optional(),
    witness: WITNESS.optional(),
  }).optional(),
  data_dir: text().optional(),
  store: STORE,
  // The URL clients reach Portcullis at (a load balancer's, for replicas): the issuer of its tokens.
  public_url: text({ max: 2048 })
    .transform((s, ctx) => {
      if (!URL.canParse(s)) {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL like https://portcullis.example.com' });
        return z.NEVER;
      }
      const u = new URL(s);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL' });
      if (u.username || u.password || u.search || u.hash) ctx.addIssue({ code: 'custom', message: 'must have no credentials, query or fragment' });
      return u.href.replace(/\/$/, '');
    })
    .optional(),
  engine: oneOf(['wasm', 'compiled']).optional(),
  targets: TARGETS.optional(),
  // Each entry is checked by its kind's plug-in (gateways/registry.ts), then against the targets.
  gateways: z.array(GATEWAY_ENTRY).optional(),
  access: ACCESS_CONFIG.optional(),
  reviews: REVIEWS_CONFIG.optional(),
  lifecycle: LIFECYCLE_CONFIG.optional(),
  // Private destinations outbound calls may reach (common/outbound.ts).
  outbound: section({
    allow_private: z
      .array(
        text({ max: 64 }).superRefine((s, ctx) => {
          try {
            parseCidr(s);
          } catch (e) {
            ctx.addIssue({ code: 'custom', message: (e as Error).message });
          }
        }),
      )
      .optional(),
  }).optional(),
  limits: LIMITS,
  metrics: METRICS,
  log: LOG,
  authzen: AUTHZEN,
  signals: SIGNALS,
});

export interface LoadedConfig {
  config: PortcullisConfig;
  /** Non-fatal adjustments (e.g. a TTL capped) to show the operator. */
  warnings: string[];
}

/** `env` resolves the `*_env` secrets (webhook secrets, SSO client secrets) at load time. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfig(text, dirname(resolve(file)), env);
}

export function parseConfig(text: string, baseDir: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  if (text.length > 4 << 20) throw new ConfigError('', 'config file is larger than 4 MiB');
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError('', `YAML syntax: ${doc.errors[0]!.message}`);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new ConfigError('', `YAML: ${(err as Error).message}`); // e.g. an alias bomb
  }
  const warnings: string[] = [];
  const f = validateConfig(CONFIG_FILE, raw, '');

  const boundaries = f.boundaries ?? DEFAULT_BOUNDARIES;
  const boundary = (b: string, path: string): string => {
    if (!boundaries.includes(b)) throw new ConfigError(path, `boundary "${b}" is not in boundaries (${boundaries.join(', ')})`);
    return b;
  };

  const tls = f.listen?.tls;
  const listen: PortcullisConfig['listen'] = {
    host: f.listen?.host ?? '127.0.0.1',
    port: f.listen?.port ?? 7070,
    trusted_proxies: f.listen?.trusted_proxies ?? [],
    proxy_protocol: f.listen?.proxy_protocol ?? false,
    timeouts: f.listen?.timeouts ?? LISTEN_TIMEOUTS.parse(undefined),
    ...(tls && {
      tls: {
        cert: resolve(baseDir, tls.cert),
        key: resolve(baseDir, tls.key),
        ...(tls.client_ca !== undefined && { client_ca: resolve(baseDir, tls.client_ca) }),
      },
    }),
  };

  const bridges: BridgeConfig[] = (f.bridges ?? []).map((b, i) => ({
    from: boundary(b.from, `bridges[${i}].from`),
    to: boundary(b.to, `bridges[${i}].to`),
    actions: b.actions ?? [],
    reason: b.reason,
  }));

  const trusts = loadTrusts(f.trusts ?? [], baseDir, env, boundary);

  producerProblems(trusts.map((t) => producerOf(t, PORTCULLIS_BUNDLE)).filter((p) => p !== undefined)).forEach((p) => {
    const i = trusts.findIndex((t) => t.name === p.trust);
    throw new ConfigError(`trusts[${i}].${p.field}`, p.message);
  });

  const ids = new Set<string>();
  const identities: IdentityConfig[] = (f.identities ?? []).map((o, i) => {
    const at = `identities[${i}]`;
    if (ids.has(o.id)) throw new ConfigError(`${at}.id`, `duplicate identity "${o.id}"`);
    ids.add(o.id);
    return {
      id: o.id,
      kind: o.kind,
      ...(o.owner !== undefined && { owner: o.owner }),
      ...(o.purpose !== undefined && { purpose: o.purpose }),
      boundary: boundary(o.boundary, `${at}.boundary`),
      environment: o.environment,
      labels: o.labels ?? {},
      parents: o.parents ?? [],
      trusts: bindingOf(o.id, o.trusts, at, trusts),
      ...(o.sponsor !== undefined && { sponsor: o.sponsor }),
    };
  });

  const resourceKeys = new Set<string>();
  const resources: ResourceConfig[] = (f.resources ?? []).map((o, i) => {
    const at = `resources[${i}]`;
    if (resourceKeys.has(`${o.type}::${o.id}`)) throw new ConfigError(`${at}.id`, `duplicate resource ${o.type}::"${o.id}"`);
    resourceKeys.add(`${o.type}::${o.id}`);
    return { type: o.type, id: o.id, boundary: boundary(o.boundary, `${at}.boundary`), environment: o.environment, parents: o.parents ?? [], attributes: o.attributes ?? {} };
  });

  checkResourceHierarchy(resources);
  const policies = f.policies === undefined ? [] : policyFiles(f.policies, baseDir);
  let schema_extension: string | undefined;
  if (f.schema_extension !== undefined) {
    const path = resolve(baseDir, f.schema_extension);
    try {
      schema_extension = readFileSync(path, 'utf8');
    } catch {
      throw new ConfigError('schema_extension', `cannot read schema file ${path}`);
    }
  }

  let ttl = f.session?.ttl ?? 10 * 60_000;
  if (ttl > MAX_SESSION_TTL_MS) {
    warnings.push(`session.ttl capped at 15m (asked for ${ttl / 60_000}m): session tokens never live longer`);
    ttl = MAX_SESSION_TTL_MS;
  }

  const witness = f.audit?.witness;
  // Replicas on several hosts: a file on one of them cannot witness the others' checkpoints.
  if (f.store?.kind === 'postgres' && witness?.url === undefined) {
    throw new ConfigError('audit.witness.url', 'is required with a postgres store: every replica publishes the checkpoints it signs to an outside witness (a file on one host cannot witness several), so a tail cut from the shared streams is noticed');
  }
  const config: PortcullisConfig = {
    baseDir,
    listen,
    data_dir: resolve(baseDir, f.data_dir ?? '.portcullis'),
    store: storeConfig(f.store, env),
    ...(f.public_url !== undefined && { public_url: f.public_url }),
    boundaries,
    bridges,
    trusts,
    identities,
    resources,
    policies,
    ...(schema_extension !== undefined && { schema_extension }),
    engine: f.engine ?? 'compiled',
    session: { ttl_ms: ttl },
    apikeys: {
      max_ttl_ms: f.apikeys?.max_ttl ?? 90 * 86_400_000,
      rotation_ms: f.apikeys?.rotation ?? 30 * 86_400_000,
    },
    audit: {
      fail_closed: f.audit?.fail_closed ?? true,
      checkpoint_every: f.audit?.checkpoint_every ?? 1000,
      checkpoint_interval_ms: f.audit?.checkpoint_interval ?? 10_000,
      ...(witness && { witness: { ...(witness.file !== undefined && { file: resolve(baseDir, witness.file) }), ...(witness.url !== undefined && { url: witness.url }) } }),
    },
    targets: f.targets ?? [],
    gateways: loadGateways(f.gateways ?? [], f.targets ?? []) as GatewayConfig[],
    access: resolveAccessConfig(f.access ?? ACCESS_CONFIG.parse({}), env, 'access'),
    reviews: resolveReviewsConfig(f.reviews),
    lifecycle: resolveLifecycleConfig(f.lifecycle),
    outbound: { allow_private: f.outbound?.allow_private ?? [] },
    limits: f.limits,
    metrics: metricsConfig(f.metrics, env),
    log: logConfig(f.log, env),
    authzen: authzenConfig(f.authzen, boundaries),
  };
  const signals = signalsConfig(f.signals, { baseDir, env, trusts: trusts.map((t) => t.name) });
  if (signals !== undefined) config.signals = signals;
  // What a trust needs of the rest of the file (e.g. `bundle: portcullis` needs a spiffe-x509 target).
  config.trusts.forEach((t, i) => trustKind(t.kind)?.check?.(t, `trusts[${i}]`, config));
  return { config, warnings };
}

/** Each `trusts[i]` by its kind's plug-in; boundaries known, names unique. */
function loadTrusts(entries: readonly Record<string, unknown>[], baseDir: string, env: NodeJS.ProcessEnv, boundary: (b: string, path: string) => string): TrustConfig[] {
  const names = new Set<string>();
  return entries.map((raw, i) => {
    const at = `trusts[${i}]`;
    const t = trustKind(String(raw.kind))!.parse(raw, { baseDir, env }, at) as TrustConfig;
    if (t.boundary !== undefined) {
      validateConfig(text(NAME), t.boundary, `${at}.boundary`);
      boundary(t.boundary, `${at}.boundary`);
    }
    if (names.has(t.name)) throw new ConfigError(`${at}.name`, `duplicate trust name "${t.name}"`);
    names.add(t.name);
    return t;
  });
}

/** The trusts a declared identity is bound to (issue 8.1, docs/identity.md): named, or implied by the one template that can produce it. */
function bindingOf(id: string, named: string[] | undefined, at: string, trusts: readonly TrustConfig[]): string[] {
  const producers = trusts.map((t) => producerOf(t, PORTCULLIS_BUNDLE)).filter((p) => p !== undefined);
  if (named !== undefined) {
    named.forEach((name, i) => {
      const path = `${at}.trusts[${i}]`;
      const p = producers.find((x) => x.trust === name);
      if (!trusts.some((t) => t.name === name)) throw new ConfigError(path, `no trust named "${name}" (known: ${trusts.map((t) => t.name).join(', ') || 'none'})`);
      if (!p || producersOf(id, [p]).length === 0) throw new ConfigError(path, `trust ${name} cannot produce identity ${id} (its identity template does not match)`);
    });
    return [...new Set(named)].sort();
  }
  const b = implicitBinding(id, producers);
  if ('ambiguous' in b) throw new ConfigError(`${at}.id`, `trusts ${b.ambiguous.join(' and ')} can both produce identity ${id}: name the trust(s) allowed to prove it with trusts: [...]`);
  return b.trusts;
}

/** `policies:` a file or folder, or a list of them; a folder gives its .cedar files. */
function policyFiles(entries: string | string[], baseDir: string): string[] {
  const list = typeof entries === 'string' ? [{ e: entries, at: 'policies' }] : entries.map((e, i) => ({ e, at: `policies[${i}]` }));
  const files: string[] = [];
  for (const { e, at } of list) {
    const path = resolve(baseDir, e);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) throw new ConfigError(at, `no such file or directory: ${path}`);
    if (stat.isDirectory()) {
      for (const f of readdirSync(path).filter((f) => f.endsWith('.cedar')).sort()) files.push(join(path, f));
    } else {
      files.push(path);
    }
  }
  return files;
}
