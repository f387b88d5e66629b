// Loads and validates portcullis.yaml. Every error names the path of the bad field; nothing in
// the file is trusted (aliases are bounded, duplicate keys rejected, unknown keys rejected).
import type { JsonWebKey } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { IdentityKind } from '../identity/types.ts';
import { IDENTITY_KINDS } from '../identity/types.ts';
import type {
  BridgeConfig,
  IdentityConfig,
  OidcTrustConfig,
  PortcullisConfig,
  ResourceConfig,
  SpiffeTrustConfig,
  TokenChecks,
  TrustConfig,
} from './types.ts';
import { ConfigError, Node } from './reader.ts';
import { validateTargets } from '../credentials/config.ts';
import { validateAccessConfig } from '../access/index.ts';
import { parseCidr } from '../common/outbound.ts';
import { validateHumanOidcTrust } from '../identity/trusts/oidc-human/config.ts';
import { checkResourceHierarchy } from '../policy/entities.ts';
import type { ObjectNode } from './reader.ts';
import { implicitBinding, kindOfId, producerOf, producerProblems, producersOf } from '../identity/binding.ts';
import { limitsConfig, listenTimeouts, metricsConfig, trustedProxies } from './server.ts';

export { ConfigError } from './reader.ts';

const MAX_SESSION_TTL_MS = 15 * 60_000;
const NAME = { pattern: /^[a-z][a-z0-9-]{0,62}$/, hint: 'must be a lowercase name like "platform" or "ci"' };
const ENTITY_TYPE = { pattern: /^[A-Z][A-Za-z0-9_]{0,63}$/, hint: 'must be a Cedar entity type like "Database"' };
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const TOP_LEVEL = [
  'listen', 'data_dir', 'boundaries', 'bridges', 'trusts', 'identities', 'resources', 'policies',
  'schema_extension', 'engine', 'session', 'apikeys', 'audit', 'targets', 'access', 'outbound', 'limits', 'metrics',
];

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
  const root = new Node(raw, '').object(TOP_LEVEL);

  const boundaries = root.has('boundaries')
    ? root.get('boundaries').strings(NAME)
    : ['application', 'platform', 'infrastructure', 'ai-platform'];
  const boundary = (n: Node): string => {
    const b = n.string(NAME);
    if (!boundaries.includes(b)) n.fail(`boundary "${b}" is not in boundaries (${boundaries.join(', ')})`);
    return b;
  };

  const listenNode = root.optional('listen')?.object(['host', 'port', 'tls', 'trusted_proxies', 'timeouts']);
  const tlsNode = listenNode?.optional('tls')?.object(['cert', 'key', 'client_ca']);
  const listen: PortcullisConfig['listen'] = {
    host: listenNode?.optional('host')?.string() ?? '127.0.0.1',
    port: listenNode?.optional('port')?.integer(0, 65535) ?? 7070,
    trusted_proxies: trustedProxies(listenNode?.optional('trusted_proxies')),
    timeouts: listenTimeouts(listenNode?.optional('timeouts')),
    ...(tlsNode && {
      tls: {
        cert: resolve(baseDir, tlsNode.required('cert').string()),
        key: resolve(baseDir, tlsNode.required('key').string()),
        ...(tlsNode.has('client_ca') && { client_ca: resolve(baseDir, tlsNode.get('client_ca').string()) }),
      },
    }),
  };

  const bridges: BridgeConfig[] = (root.optional('bridges')?.list() ?? []).map((n) => {
    const o = n.object(['from', 'to', 'actions', 'reason']);
    return {
      from: boundary(o.required('from')),
      to: boundary(o.required('to')),
      actions: o.optional('actions')?.strings() ?? [],
      reason: o.required('reason').string({ max: 512 }),
    };
  });

  const trustNames = new Set<string>();
  const trusts: TrustConfig[] = (root.optional('trusts')?.list() ?? []).map((n) => {
    // Each kind checks its own keys; here only that it is a mapping with a known kind.
    const present = typeof n.value === 'object' && n.value !== null ? Object.keys(n.value) : [];
    const kind = n.object(present).required('kind').oneOf(['oidc', 'spiffe', 'oidc-human']);
    const t = kind === 'oidc' ? oidcTrust(n, baseDir, boundary) : kind === 'spiffe' ? spiffeTrust(n, baseDir, boundary) : humanTrust(n, env, boundary);
    if (trustNames.has(t.name)) new Node(t.name, `${n.path}.name`).fail(`duplicate trust name "${t.name}"`);
    trustNames.add(t.name);
    return t;
  });

  producerProblems(trusts.map((t) => producerOf(t, PORTCULLIS_BUNDLE)).filter((p) => p !== undefined)).forEach((p) => {
    const i = trusts.findIndex((t) => t.name === p.trust);
    new Node(undefined, `trusts[${i}].${p.field}`).fail(p.message);
  });

  const ids = new Set<string>();
  const identities: IdentityConfig[] = (root.optional('identities')?.list() ?? []).map((n) => {
    const o = n.object(['id', 'kind', 'owner', 'purpose', 'boundary', 'environment', 'labels', 'parents', 'trusts']);
    const id = o.required('id').string({ pattern: /^[a-z][a-z0-9-]*:\S{1,255}$|^spiffe:\/\/\S+$/, hint: 'must look like "workload:github/acme/api"' });
    if (ids.has(id)) o.get('id').fail(`duplicate identity "${id}"`);
    ids.add(id);
    const kind = o.required('kind').oneOf(IDENTITY_KINDS);
    if (kindOfId(id) !== undefined && kindOfId(id) !== kind) o.get('kind').fail(`${kind} does not match the id ${id} (a ${kindOfId(id)} id)`);
    return {
      id,
      kind,
      ...(o.has('owner') && { owner: o.get('owner').string({ max: 256 }) }),
      ...(o.has('purpose') && { purpose: o.get('purpose').string({ max: 1024 }) }),
      boundary: boundary(o.required('boundary')),
      environment: o.required('environment').string({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/, hint: 'must be a short lowercase name like "prod"' }),
      labels: labels(o.optional('labels')),
      parents: parents(o.optional('parents')),
      trusts: bindingOf(id, o, trusts),
    };
  });

  const resourceKeys = new Set<string>();
  const resources: ResourceConfig[] = (root.optional('resources')?.list() ?? []).map((n) => {
    const o = n.object(['type', 'id', 'boundary', 'environment', 'parents', 'attributes']);
    const type = o.required('type').string(ENTITY_TYPE);
    const id = o.required('id').string({ max: 256 });
    if (resourceKeys.has(`${type}::${id}`)) o.get('id').fail(`duplicate resource ${type}::"${id}"`);
    resourceKeys.add(`${type}::${id}`);
    return {
      type,
      id,
      boundary: boundary(o.required('boundary')),
      environment: o.required('environment').string({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/ }),
      parents: parents(o.optional('parents')),
      attributes: labels(o.optional('attributes')),
    };
  });

  checkResourceHierarchy(resources);
  const policies = root.has('policies') ? policyFiles(root.get('policies'), baseDir) : [];
  const schemaNode = root.optional('schema_extension');
  let schema_extension: string | undefined;
  if (schemaNode) {
    const path = resolve(baseDir, schemaNode.string());
    try {
      schema_extension = readFileSync(path, 'utf8');
    } catch {
      schemaNode.fail(`cannot read schema file ${path}`);
    }
  }

  const sessionNode = root.optional('session')?.object(['ttl']);
  let ttl = sessionNode?.optional('ttl')?.duration() ?? 10 * 60_000;
  if (ttl > MAX_SESSION_TTL_MS) {
    warnings.push(`session.ttl capped at 15m (asked for ${ttl / 60_000}m): session tokens never live longer`);
    ttl = MAX_SESSION_TTL_MS;
  }

  const apikeysNode = root.optional('apikeys')?.object(['max_ttl', 'rotation']);
  const auditNode = root.optional('audit')?.object(['fail_closed', 'checkpoint_every', 'checkpoint_interval', 'witness']);
  const witness = auditWitness(auditNode?.optional('witness'), baseDir);

  const config: PortcullisConfig = {
    baseDir,
    listen,
    data_dir: resolve(baseDir, root.optional('data_dir')?.string() ?? '.portcullis'),
    boundaries,
    bridges,
    trusts,
    identities,
    resources,
    policies,
    ...(schema_extension !== undefined && { schema_extension }),
    engine: root.optional('engine')?.oneOf(['wasm', 'compiled'] as const) ?? 'compiled',
    session: { ttl_ms: ttl },
    apikeys: {
      max_ttl_ms: apikeysNode?.optional('max_ttl')?.duration() ?? 90 * 86_400_000,
      rotation_ms: apikeysNode?.optional('rotation')?.duration() ?? 30 * 86_400_000,
    },
    audit: {
      fail_closed: auditNode?.optional('fail_closed')?.boolean() ?? true,
      checkpoint_every: auditNode?.optional('checkpoint_every')?.integer(1, 1_000_000) ?? 1000,
      checkpoint_interval_ms: auditNode?.optional('checkpoint_interval')?.duration() ?? 10_000,
      ...(witness && { witness }),
    },
    targets: validateTargets(root.has('targets') ? root.get('targets').list().map((n) => n.value) : []),
    access: validateAccessConfig(root.optional('access')?.value, env, 'access'),
    outbound: outboundConfig(root.optional('outbound')),
    limits: limitsConfig(root.optional('limits')),
    metrics: metricsConfig(root.optional('metrics'), env),
  };
  config.trusts.forEach((t, i) => {
    if (t.kind !== 'spiffe') return;
    // One trust per trust domain: a certificate or JWT-SVID is routed by its domain (issue 8.1).
    const first = config.trusts.findIndex((x) => x.kind === 'spiffe' && x.trust_domain === t.trust_domain);
    if (first !== i) new Node(t.trust_domain, `trusts[${i}].trust_domain`).fail(`trust domain ${t.trust_domain} is already the trust ${config.trusts[first]!.name}'s: SVIDs are routed by trust domain, so one trust per domain`);
    if (t.bundle !== PORTCULLIS_BUNDLE) return;
    if (!config.targets.some((x) => x.kind === 'spiffe-x509' && x.trust_domain === t.trust_domain)) {
      new Node(t.bundle, `trusts[${i}].bundle`).fail(`"portcullis" needs a spiffe-x509 target with trust_domain ${t.trust_domain}`);
    }
  });
  return { config, warnings };
}

const TOKEN_CHECK_KEYS = ['max_token_lifetime', 'replay'];

/** `max_token_lifetime` (default 24h, at most 366d: Kubernetes may extend projected tokens to a year) and `replay: allow | reject` of a JWT trust. */
function tokenChecks(o: ObjectNode): TokenChecks {
  const n = o.optional('max_token_lifetime');
  let seconds = 24 * 3600; // = identity/jwt.ts DEFAULT_MAX_TOKEN_LIFETIME_SECONDS (not imported: keeps jose out of config loading)
  if (n) {
    const ms = n.duration();
    if (ms < 1000 || ms > 366 * 86_400_000) n.fail('must be between 1s and 366d');
    seconds = Math.floor(ms / 1000);
  }
  return { max_token_lifetime_seconds: seconds, replay: (o.optional('replay')?.oneOf(['allow', 'reject']) ?? 'allow') as TokenChecks['replay'] };
}

/** `audit.witness`: where signed checkpoints are published outside the store (docs/audit.md). */
function auditWitness(node: Node | undefined, baseDir: string): { file?: string; url?: string } | undefined {
  if (!node) return undefined;
  const w = node.object(['file', 'url']);
  const out: { file?: string; url?: string } = {};
  const file = w.optional('file');
  if (file) out.file = resolve(baseDir, file.string({ max: 1024 }));
  const url = w.optional('url');
  if (url) {
    const text = url.string({ max: 2048 });
    const u = URL.canParse(text) ? new URL(text) : url.fail('must be an absolute http(s) URL');
    if (u.protocol !== 'https:' && u.protocol !== 'http:') url.fail('must be an http(s) URL');
    if (u.username || u.password) url.fail('must not carry credentials (user:password@)');
    if (u.hash) url.fail('must not have a fragment');
    out.url = u.href;
  }
  if (out.file === undefined && out.url === undefined) w.fail('needs a file, a url, or both');
  return out;
}

const OIDC_KEYS = [
  'issuer', 'jwks_uri', 'jwks', 'audiences', 'algorithms', 'require', 'identity', 'identity_kind',
  'attributes', 'boundary', 'environment', 'owner', 'leeway', 'shared_namespace', ...TOKEN_CHECK_KEYS,
];
export const PORTCULLIS_BUNDLE = 'portcullis';
const SPIFFE_KEYS = ['trust_domain', 'bundle', 'audiences', 'identity_kind', 'boundary', 'environment', 'owner', 'leeway', 'shared_namespace', ...TOKEN_CHECK_KEYS];

function defaults(o: ObjectNode, boundary: (n: Node) => string) {
  return {
    ...(o.has('boundary') && { boundary: boundary(o.get('boundary')) }),
    ...(o.has('environment') && { environment: o.get('environment').string({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/ }) }),
    ...(o.has('owner') && { owner: o.get('owner').string({ max: 256 }) }),
    ...(o.has('shared_namespace') && { shared_namespace: o.get('shared_namespace').boolean() }),
  };
}

function leeway(o: ObjectNode): number {
  const n = o.optional('leeway');
  if (!n) return 30;
  const ms = n.duration();
  if (ms > 300_000) n.fail('must be at most 5m');
  return Math.floor(ms / 1000);
}

function oidcTrust(n: Node, baseDir: string, boundary: (n: Node) => string): OidcTrustConfig {
  const o = n.object(['kind', 'name', ...OIDC_KEYS]);
  const name = o.required('name').string(NAME);
  const issuer = o.required('issuer').string({ pattern: /^https?:\/\/\S+$/, hint: 'must be an https:// URL' });
  if (o.has('jwks_uri') === o.has('jwks')) o.fail('needs exactly one of jwks_uri or jwks');
  let jwks: { keys: JsonWebKey[] } | undefined;
  if (o.has('jwks')) {
    const j = o.get('jwks');
    if (typeof j.value === 'string') {
      try {
        jwks = JSON.parse(readFileSync(resolve(baseDir, j.value), 'utf8'));
      } catch {
        j.fail(`cannot read a JWKS from ${resolve(baseDir, j.value)}`);
      }
    } else {
      jwks = j.value as { keys: JsonWebKey[] };
    }
    if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) j.fail('must be a JWKS: {keys: [...]} with at least one key');
  }
  const algorithms = o.optional('algorithms')?.strings() ?? ['RS256', 'ES256', 'EdDSA'];
  algorithms.forEach((a, i) => {
    if (!ASYMMETRIC_ALGS.includes(a)) new Node(a, `${o.path}.algorithms[${i}]`).fail(`"${a}" is not allowed: only asymmetric algorithms (${ASYMMETRIC_ALGS.join(', ')})`);
  });
  const require: Record<string, string | number | boolean> = {};
  if (o.has('require')) {
    const r = o.get('require');
    if (typeof r.value !== 'object' || r.value === null || Array.isArray(r.value)) r.fail('must be a mapping of claim: value');
    for (const [k, v] of Object.entries(r.value as Record<string, unknown>)) {
      if (!['string', 'number', 'boolean'].includes(typeof v)) new Node(v, `${r.path}.${k}`).fail('must be a string, number or boolean');
      require[k] = v as string | number | boolean;
    }
  }
  const identity = o.required('identity').string({ max: 256 });
  const placeholders = [...identity.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!);
  if (placeholders.length === 0 || placeholders.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
    o.get('identity').fail('must be a template with {claim} placeholders, e.g. "workload:github/{repository}"');
  }
  return {
    name,
    kind: 'oidc',
    issuer,
    ...(o.has('jwks_uri') && { jwks_uri: o.get('jwks_uri').string({ pattern: /^https?:\/\/\S+$/, hint: 'must be an http(s) URL' }) }),
    ...(jwks && { jwks }),
    audiences: o.required('audiences').strings(),
    algorithms,
    require,
    identity,
    identity_kind: (o.optional('identity_kind')?.oneOf(IDENTITY_KINDS) ?? 'workload') as IdentityKind,
    attributes: o.optional('attributes')?.strings({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ }) ?? [],
    leeway_seconds: leeway(o),
    ...tokenChecks(o),
    ...defaults(o, boundary),
  };
}

function spiffeTrust(n: Node, baseDir: string, boundary: (n: Node) => string): SpiffeTrustConfig {
  const o = n.object(['kind', 'name', ...SPIFFE_KEYS]);
  return {
    name: o.required('name').string(NAME),
    kind: 'spiffe',
    trust_domain: o.required('trust_domain').string({ pattern: /^[a-z0-9._-]+$/, hint: 'must be a trust domain like "example.org"' }),
    // `portcullis`: Portcullis' own CA for this trust domain (a spiffe-x509 target must exist).
    bundle: ((b) => (b === PORTCULLIS_BUNDLE ? b : resolve(baseDir, b)))(o.required('bundle').string()),
    audiences: o.optional('audiences')?.strings() ?? ['portcullis'],
    identity_kind: (o.optional('identity_kind')?.oneOf(IDENTITY_KINDS) ?? 'workload') as IdentityKind,
    leeway_seconds: leeway(o),
    ...tokenChecks(o),
    ...defaults(o, boundary),
  };
}

function humanTrust(n: Node, env: NodeJS.ProcessEnv, boundary: (n: Node) => string): TrustConfig {
  const t = validateHumanOidcTrust(n.value, env, n.path);
  if (t.boundary !== undefined) boundary(new Node(t.boundary, `${n.path}.boundary`));
  return t;
}

/** The trusts a declared identity is bound to (issue 8.1, docs/identity.md): named, or implied by the one template that can produce it. */
function bindingOf(id: string, o: ObjectNode, trusts: readonly TrustConfig[]): string[] {
  const producers = trusts.map((t) => producerOf(t, PORTCULLIS_BUNDLE)).filter((p) => p !== undefined);
  if (o.has('trusts')) {
    const names = o.get('trusts').strings();
    names.forEach((name, i) => {
      const at = new Node(name, `${o.path}.trusts[${i}]`);
      const p = producers.find((x) => x.trust === name);
      if (!trusts.some((t) => t.name === name)) at.fail(`no trust named "${name}" (known: ${trusts.map((t) => t.name).join(', ') || 'none'})`);
      if (!p || producersOf(id, [p]).length === 0) at.fail(`trust ${name} cannot produce identity ${id} (its identity template does not match)`);
    });
    return [...new Set(names)].sort();
  }
  const b = implicitBinding(id, producers);
  if ('ambiguous' in b) return o.get('id').fail(`trusts ${b.ambiguous.join(' and ')} can both produce identity ${id}: name the trust(s) allowed to prove it with trusts: [...]`);
  return b.trusts;
}

function labels(n: Node | undefined): Record<string, string> {
  if (!n) return {};
  if (typeof n.value !== 'object' || n.value === null || Array.isArray(n.value)) n.fail('must be a mapping of name: value');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(n.value as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(k)) new Node(v, `${n.path}.${k}`).fail('is not a valid name');
    if (!['string', 'number', 'boolean'].includes(typeof v)) new Node(v, `${n.path}.${k}`).fail('must be a string, number or boolean');
    out[k] = String(v);
  }
  return out;
}

function parents(n: Node | undefined): { type: string; id: string }[] {
  if (!n) return [];
  return n.list().map((p) => {
    // Accept `Team::"payments"` or {type, id}.
    if (typeof p.value === 'string') {
      const m = /^([A-Z][A-Za-z0-9_]*)::"([^"]{1,256})"$/.exec(p.value);
      if (!m) return p.fail('must be like Team::"payments" or {type: Team, id: payments}');
      return { type: m[1]!, id: m[2]! };
    }
    const o = p.object(['type', 'id']);
    return { type: o.required('type').string(ENTITY_TYPE), id: o.required('id').string({ max: 256 }) };
  });
}

function policyFiles(n: Node, baseDir: string): string[] {
  const entries = typeof n.value === 'string' ? [n] : n.list();
  const files: string[] = [];
  for (const e of entries) {
    const path = resolve(baseDir, e.string());
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return e.fail(`no such file or directory: ${path}`);
    const isDir = stat.isDirectory();
    if (isDir) {
      for (const f of readdirSync(path).filter((f) => f.endsWith('.cedar')).sort()) files.push(join(path, f));
    } else {
      files.push(path);
    }
  }
  return files;
}

/** `outbound: { allow_private: [CIDR…] }`: private destinations outbound calls may reach (common/outbound.ts). */
function outboundConfig(node: Node | undefined): PortcullisConfig['outbound'] {
  if (node === undefined) return { allow_private: [] };
  const o = node.object(['allow_private']);
  const list = o.optional('allow_private')?.list() ?? [];
  return {
    allow_private: list.map((n) => {
      const text = n.string({ max: 64 });
      try {
        parseCidr(text);
      } catch (e) {
        n.fail((e as Error).message);
      }
      return text;
    }),
  };
}
