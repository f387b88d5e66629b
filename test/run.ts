// `npm test` after lint: every test file over the embedded SQLite store, then again over
// PostgreSQL (PCX_TEST_STORE=postgres) every file whose servers or brokers take the run's store
// (they build it with test/store/stores.ts, directly or through a harness). One embedded
// PostgreSQL cluster serves each pass (test/store/global-setup.ts).
//
//   node test/run.ts            both passes
//   node test/run.ts sqlite     only the first; `postgres` only the second
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const FLAGS = ['--test', '--test-timeout=400000', '--test-global-setup=test/store/global-setup.ts'];
/**
 * Test files at once. Most files wait on sockets, child processes and timers more than they
 * compute, so three share two cores well over SQLite; over PostgreSQL the server takes a core's
 * share itself, so two. PCX_TEST_CONCURRENCY overrides both.
 */
const CONCURRENCY = { sqlite: 3, postgres: 2 };
/** Compiled modules kept across test processes (and runs): each file's process skips recompiling src/. */
const COMPILE_CACHE = join(root, 'node_modules', '.cache', 'portcullis-compile');
/** Calls that take the run's store (test/store/stores.ts). */
const TAKES_STORE = /\btestStoreConfig\(|\btestStore\(/;
const IMPORT = /^import (?!type )[^;]*?from '(\.[^']+\.ts)';/gm;

/** Whether a file takes the run's store, itself or through a helper it imports (transitively). */
function followsStore(file: string, seen = new Map<string, boolean>()): boolean {
  const known = seen.get(file);
  if (known !== undefined) return known;
  seen.set(file, false); // import cycles end here
  const text = readFileSync(join(root, file), 'utf8');
  const yes = TAKES_STORE.test(text) || [...text.matchAll(IMPORT)].some((m) => {
    const dep = relative(root, join(root, dirname(file), m[1]!));
    return dep.startsWith('test/') && !dep.endsWith('store/stores.ts') && followsStore(dep, seen);
  });
  seen.set(file, yes);
  return yes;
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'mutants' || e.name === 'fixtures' ? [] : files(p);
    return e.name.endsWith('.test.ts') ? [relative(root, p)] : [];
  });
}

/**
 * The longest files (measured: each 25 s to nearly 3 minutes on this machine) start first, so the
 * pass does not end with one of them running alone; the rest follow in name order. A file missing
 * from the list is only started later, never skipped.
 */
const LONGEST = [
  'test/integration/cli-walkthrough.test.ts',
  'test/policy/conformance.test.ts',
  'test/policy/fuzz.test.ts',
  'test/client/sdk.test.ts',
  'test/gateways/ssh-gateway.test.ts',
  'test/integration/console.test.ts',
  'test/cluster/replicas.test.ts',
  'test/integration/example-config.test.ts',
  'test/cluster/mcp-replicas.test.ts',
  'test/cluster/gateway-replicas.test.ts',
  'test/integration/dev-postgres-user.test.ts',
  'test/integration/dev-server.test.ts',
];
const rank = (f: string) => (LONGEST.includes(f) ? LONGEST.indexOf(f) : LONGEST.length);
const all = files(join(root, 'test')).sort().sort((a, b) => rank(a) - rank(b));
const seen = new Map<string, boolean>();
const pg = all.filter((f) => followsStore(f, seen));
const wanted = process.argv[2];
type Pass = { name: 'sqlite' | 'postgres'; files: string[]; env: NodeJS.ProcessEnv };
const both: Pass[] = [
  { name: 'sqlite', files: all, env: { ...process.env, PCX_TEST_STORE: 'sqlite', NODE_COMPILE_CACHE: COMPILE_CACHE } },
  { name: 'postgres', files: pg, env: { ...process.env, PCX_TEST_STORE: 'postgres', NODE_COMPILE_CACHE: COMPILE_CACHE } },
];
const passes = both.filter((p) => wanted === undefined || p.name === wanted);

for (const p of passes) {
  process.stderr.write(`\n== ${p.name}: ${p.files.length} test files${p.name === 'postgres' ? ' (those that follow the run\'s store)' : ''}\n`);
  const started = Date.now();
  const concurrency = process.env.PCX_TEST_CONCURRENCY ?? String(CONCURRENCY[p.name]);
  const r = spawnSync(process.execPath, [...FLAGS, `--test-concurrency=${concurrency}`, ...p.files], { cwd: root, env: p.env, stdio: 'inherit' });
  process.stderr.write(`== ${p.name} pass: ${r.status === 0 ? 'ok' : 'FAILED'} in ${Math.round((Date.now() - started) / 1000)} s\n`);
  if (r.status !== 0) process.exit(r.status ?? 1);
}
