// The deployment files in deploy/ (docs/deployment.md): every YAML file parses, the compose layout
// has PostgreSQL, three replicas, the load balancer and the migrate step in the right order, the
// sample portcullis.yaml loads with the real config loader, and the Helm chart's own YAML parses.
// Helm templates are Go templates, not YAML: they are not parsed here (no helm binary to render them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseDocument } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';

const REPO = join(import.meta.dirname, '..', '..');
const DEPLOY = join(REPO, 'deploy');
const TEMPLATES = join(DEPLOY, 'helm', 'portcullis', 'templates');

type Json = Record<string, unknown>;

/** Every .yaml/.yml file under deploy/ except the Helm templates, plus the dotfiles yamllint reads. */
function yamlFiles(dir = DEPLOY): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === TEMPLATES ? [] : yamlFiles(path);
    return /\.ya?ml$/.test(e.name) || e.name === '.yamllint' ? [path] : [];
  });
}

/** Strict parse: duplicate keys and syntax errors fail; merge keys (`<<`) resolved as compose does. */
function load(path: string): Json {
  const doc = parseDocument(readFileSync(path, 'utf8'), { uniqueKeys: true, merge: true, prettyErrors: true });
  assert.deepEqual(doc.errors.map((e) => e.message), [], `${relative(REPO, path)} parses`);
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), `${relative(REPO, path)} is a mapping`);
  return value as Json;
}

/** Helm's mergeOverwrite for plain values: mappings merge key by key, anything else replaces. */
function deepMerge(a: Json, b: Json): Json {
  const out: Json = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const isMap = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);
    out[k] = isMap(v) && isMap(out[k]) ? deepMerge(out[k] as Json, v as Json) : v;
  }
  return out;
}

const obj = (v: unknown, what: string): Json => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is a mapping`);
  return v as Json;
};

test('every YAML file in deploy/ (Helm templates aside) parses', () => {
  const files = yamlFiles().map((f) => relative(DEPLOY, f)).sort();
  for (const f of ['compose.yaml', 'portcullis.yaml', 'helm/portcullis/Chart.yaml', 'helm/portcullis/values.yaml']) assert.ok(files.includes(f), `deploy/${f} exists`);
  for (const f of files) load(join(DEPLOY, f));
});

test('compose: PostgreSQL 17, a migrate step, three replicas after it, HAProxy in front', () => {
  const compose = load(join(DEPLOY, 'compose.yaml'));
  const services = obj(compose.services, 'services');
  const postgres = obj(services.postgres, 'postgres');
  assert.match(String(postgres.image), /^postgres:17(\b|$)/);

  const migrate = obj(services.migrate, 'migrate');
  assert.deepEqual((migrate.command as string[]).slice(0, 1), ['migrate']);
  assert.equal(obj(obj(migrate.depends_on, 'migrate.depends_on').postgres, 'migrate → postgres').condition, 'service_healthy');
  assert.equal(migrate.restart, 'no');

  const replicas = Object.keys(services).filter((n) => /^portcullis-\d+$/.test(n));
  assert.equal(replicas.length, 3, 'three replicas');
  const lb = obj(services.haproxy, 'haproxy');
  assert.match(String(lb.image), /^haproxy:/);
  for (const name of replicas) {
    const r = obj(services[name], name);
    assert.deepEqual(r.command, ['server', '--config', '/etc/portcullis/portcullis.yaml'], `${name} runs the server on the shared file`);
    assert.equal(obj(obj(r.depends_on, `${name}.depends_on`).migrate, `${name} → migrate`).condition, 'service_completed_successfully', `${name} starts after migrate`);
    const env = obj(r.environment, `${name}.environment`);
    assert.ok(String(env.PORTCULLIS_STORE_URL).startsWith('postgres://'), `${name} has the store URL`);
    // The same master key on every replica, from deploy/.env, and compose refuses to start without it.
    assert.equal(env.PORTCULLIS_MASTER_KEY, '${PORTCULLIS_MASTER_KEY:?set it in deploy/.env, see .env.example}');
    assert.equal(r.read_only, true, `${name} has a read-only root`);
    assert.ok((lb.depends_on as string[]).includes(name), `the load balancer waits for ${name}`);
  }
  // No secret in the committed files: only references to deploy/.env.
  const text = readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8');
  assert.doesNotMatch(text, /POSTGRES_PASSWORD: (?!\$\{)/);
  const example = readFileSync(join(DEPLOY, '.env.example'), 'utf8');
  assert.match(example, /^POSTGRES_PASSWORD=$/m);
  assert.match(example, /^PORTCULLIS_MASTER_KEY=$/m);
  assert.match(readFileSync(join(DEPLOY, '.gitignore'), 'utf8'), /^\.env$/m);

  // The load balancer's fixed address is the one proxy the replicas believe.
  const lbAddress = obj(obj(lb.networks, 'haproxy.networks').portcullis, 'haproxy on portcullis').ipv4_address;
  const sample = load(join(DEPLOY, 'portcullis.yaml'));
  assert.deepEqual(obj(sample.listen, 'listen').trusted_proxies, [`${String(lbAddress)}/32`]);
  // HAProxy sends to the replicas by their service names and checks readiness.
  const cfg = readFileSync(join(DEPLOY, 'haproxy.cfg'), 'utf8');
  for (const name of replicas) assert.match(cfg, new RegExp(`^\\s+server ${name} ${name}:7070\\b`, 'm'));
  assert.match(cfg, /http-check send meth GET uri \/readyz/);
  // Client addresses with the PROXY protocol, which the replicas expect from HAProxy only.
  assert.match(cfg, /^\s+default-server [^#\n]*\bsend-proxy-v2\b/m);
  assert.equal(obj(sample.listen, 'listen').proxy_protocol, true);
});

test('the sample deploy/portcullis.yaml loads with the config loader', () => {
  const text = readFileSync(join(DEPLOY, 'portcullis.yaml'), 'utf8');
  const url = 'postgres://portcullis:not-a-secret@postgres:5432/portcullis?sslmode=disable';
  const { config, warnings } = parseConfig(text, DEPLOY, { PORTCULLIS_STORE_URL: url });
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.store, { kind: 'postgres', url_env: 'PORTCULLIS_STORE_URL', url, pool: 20 });
  assert.equal(config.public_url, 'http://localhost:8080');
  assert.equal(config.listen.host, '0.0.0.0');
  assert.equal(config.listen.port, 7070);
  assert.deepEqual(config.metrics?.listen, { host: '0.0.0.0', port: 9464 });
  assert.ok(config.audit.witness?.url, 'a PostgreSQL store needs a witness URL');
  // The URL comes only from the environment.
  assert.throws(() => parseConfig(text, DEPLOY, {}), /PORTCULLIS_STORE_URL is not set/);
});

test('the Helm chart: Chart.yaml and values.yaml parse and say what the templates expect', () => {
  const chart = load(join(DEPLOY, 'helm', 'portcullis', 'Chart.yaml'));
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'portcullis');
  assert.match(String(chart.version), /^\d+\.\d+\.\d+$/);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  assert.equal(chart.appVersion, pkg.version, 'appVersion is the package version (the default image tag)');

  const values = load(join(DEPLOY, 'helm', 'portcullis', 'values.yaml'));
  assert.equal(values.replicaCount, 3);
  assert.equal(values.existingSecret, '', 'no secret in the chart: an existing Secret is required');
  assert.equal(values.publicUrl, '', 'publicUrl is required');
  assert.equal(values.witnessUrl, '', 'witnessUrl is required');
  assert.deepEqual(values.secretKeys, { storeUrl: 'store-url', masterKey: 'master-key' });
  assert.equal(obj(values.podSecurityContext, 'podSecurityContext').runAsNonRoot, true);
  assert.equal(obj(values.securityContext, 'securityContext').readOnlyRootFilesystem, true);
  assert.equal(obj(values.podDisruptionBudget, 'podDisruptionBudget').enabled, true);
  // What templates/_helpers.tpl renders as portcullis.yaml (its base, values.config merged over
  // it) must load: the same dictionaries, built here from the same values.
  const base: Json = {
    listen: { host: '0.0.0.0', port: 7070, trusted_proxies: values.trustedProxies },
    store: { kind: 'postgres', url_env: 'PORTCULLIS_STORE_URL', pool: obj(values.store, 'store').pool },
    public_url: 'https://portcullis.example.com',
    data_dir: '/var/lib/portcullis',
    metrics: { listen: { host: '0.0.0.0', port: obj(values.service, 'service').metricsPort } },
    audit: { witness: { url: 'https://witness.example.com/checkpoints' } },
  };
  const rendered = deepMerge(base, obj(values.config, 'config'));
  const { config } = parseConfig(JSON.stringify(rendered), DEPLOY, { PORTCULLIS_STORE_URL: 'postgres://u:p@db:5432/portcullis' });
  assert.equal(config.store.kind, 'postgres');
  assert.equal(config.public_url, 'https://portcullis.example.com');

  const templates = readdirSync(TEMPLATES).sort();
  for (const t of ['configmap.yaml', 'deployment.yaml', 'migrate-job.yaml', 'pdb.yaml', 'service.yaml']) assert.ok(templates.includes(t), `templates/${t}`);
  // Not a render, only a guard against the commonest template slip: every block is closed.
  for (const t of templates) {
    const text = readFileSync(join(TEMPLATES, t), 'utf8');
    const opened = text.match(/\{\{-?\s*(if|range|with|define)\b/g)?.length ?? 0;
    const closed = text.match(/\{\{-?\s*end\s*-?\}\}/g)?.length ?? 0;
    assert.equal(closed, opened, `templates/${t}: every if/range/with/define has its end`);
  }
  const job = readFileSync(join(TEMPLATES, 'migrate-job.yaml'), 'utf8');
  assert.match(job, /helm\.sh\/hook: pre-install,pre-upgrade/);
  const deployment = readFileSync(join(TEMPLATES, 'deployment.yaml'), 'utf8');
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.match(deployment, new RegExp(`${probe}:`));
  assert.match(deployment, /path: \/readyz/);
  assert.match(deployment, /PORTCULLIS_MASTER_KEY[\s\S]*secretKeyRef/);
});

test('the systemd unit passes systemd-analyze verify and runs what the CLI has', { skip: spawnSync('systemd-analyze', ['--version']).status === 0 ? false : 'systemd-analyze missing' }, () => {
  const unit = join(DEPLOY, 'systemd', 'portcullis.service');
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  // Complaints about this machine (no such user, no /opt/portcullis) are not the unit's fault.
  const own = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() && !/Failed to resolve user|does not exist|No such file|not executable/i.test(l));
  assert.deepEqual(own, [], 'systemd-analyze verify');
  const text = readFileSync(unit, 'utf8');
  assert.match(text, /^ExecStartPre=\S+ \S+portcullis\.js migrate --config /m);
  assert.match(text, /^ExecStart=\S+ \S+portcullis\.js server --config /m);
  assert.match(text, /^NoNewPrivileges=yes$/m);
});
