// Deliberate bugs in security code, kept as patches: each must make the tests it names fail.
// A mutant that survives (its tests still pass) or no longer applies is a failure of the suite.
//
//   node test/mutants/run.ts            every patch in test/mutants/
//   node test/mutants/run.ts NAME ...   only these (file names, with or without .patch)
//
// A patch file starts with a header, then a unified diff (`git diff` output) against the repo root:
//   # mutant: what the bug is, in one line
//   # item: the issue item it guards (e.g. 8.1)
//   # tests: test/a.test.ts test/b.test.ts
//   # pattern: a regular expression (optional): only the tests whose names match run
//     (`--test-name-pattern`), so a mutant in a long file runs just the tests that kill it
// Each mutant runs in a scratch copy of the repository (node_modules symlinked, ../shared linked
// beside it), PCX_MUTANTS_PARALLEL (default 3) at a time, sharing one embedded PostgreSQL cluster
// (test/store/pg.ts) and one compile cache.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportCluster, startCluster } from '../store/pg.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = join(repo, 'test', 'mutants');
const PARALLEL = Math.max(1, Number(process.env.PCX_MUTANTS_PARALLEL ?? 3));
const SLOTS = mkdtempSync(join(tmpdir(), 'mutants-'));
const COMPILE_CACHE = join(SLOTS, 'compile-cache');
const COPY = ['src', 'test', 'bench', 'bin', 'examples', 'docs', 'package.json', 'tsconfig.json', 'README.md'];

interface Mutant { name: string; file: string; tests: string[]; pattern: string | undefined; what: string }

function load(file: string): Mutant {
  const text = readFileSync(file, 'utf8');
  const header = (key: string) => text.match(new RegExp(`^# ${key}:\\s*(.+)$`, 'm'))?.[1]?.trim();
  const tests = (header('tests') ?? '').split(/\s+/).filter(Boolean);
  if (tests.length === 0) throw new Error(`${basename(file)}: no "# tests:" header`);
  const pattern = header('pattern');
  if (pattern !== undefined) new RegExp(pattern); // a bad pattern fails here, not as a survivor
  return { name: basename(file, '.patch'), file, tests, pattern, what: header('mutant') ?? '' };
}

/** A failing test in the spec reporter's output (not the summary's "✖ failing tests:" heading). */
const FAILED = /^\s*✖ (?!failing tests:)/m;

/**
 * Runs a command in its own process group. With `stopAtFailure`, the first failing test ends the
 * run (a mutant is killed by one failure; the rest of its tests need not run).
 */
function run(cmd: string, args: string[], cwd: string, timeoutMs: number, stopAtFailure = false): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, PORTCULLIS_MUTANT: '1', NODE_COMPILE_CACHE: COMPILE_CACHE }, detached: true });
    let out = '';
    let failed = false;
    const kill = () => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
    const take = (d: Buffer) => {
      out += d;
      if (stopAtFailure && !failed && FAILED.test(out)) {
        failed = true;
        kill();
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(kill, timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: failed ? 1 : code ?? 1, out }); });
  });
}

/**
 * Checks one mutant in a fresh copy at its slot's path: the same path for every mutant a slot runs,
 * so the compile cache (keyed by path and contents) serves every file the patch did not touch.
 */
async function check(m: Mutant, slot: number): Promise<{ m: Mutant; verdict: 'killed' | 'survived' | 'stale'; detail: string; ms: number }> {
  const started = Date.now();
  const parent = join(SLOTS, `slot-${slot}`);
  const copy = join(parent, 'repo');
  rmSync(parent, { recursive: true, force: true });
  mkdirSync(parent);
  try {
    for (const p of COPY) if (existsSync(join(repo, p))) cpSync(join(repo, p), join(copy, p), { recursive: true });
    symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'));
    if (existsSync(join(repo, '..', 'shared'))) symlinkSync(realpathSync(join(repo, '..', 'shared')), join(parent, 'shared'));
    const applied = await run('git', ['apply', '--unidiff-zero', m.file], copy, 30_000);
    if (applied.code !== 0) return { m, verdict: 'stale', detail: applied.out.trim(), ms: Date.now() - started };
    const only = m.pattern === undefined ? [] : [`--test-name-pattern=${m.pattern}`];
    const r = await run(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=60000', ...only, ...m.tests], copy, 240_000, true);
    // A pattern that matches nothing runs nothing and passes: that is a stale mutant, not a survivor.
    if (r.code === 0 && m.pattern !== undefined && /^ℹ tests 0$/m.test(r.out)) return { m, verdict: 'stale', detail: `no test matches the pattern ${m.pattern}`, ms: Date.now() - started };
    const failing = r.out.split('\n').filter((l) => /^\s*✖/.test(l)).slice(0, 3).map((l) => l.trim()).join('; ');
    return { m, verdict: r.code === 0 ? 'survived' : 'killed', detail: failing, ms: Date.now() - started };
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
}

const wanted = process.argv.slice(2).map((a) => basename(a, '.patch'));
const files = readdirSync(here).filter((f) => f.endsWith('.patch')).sort()
  .filter((f) => wanted.length === 0 || wanted.includes(basename(f, '.patch')));
if (files.length === 0) { console.error('no mutant patches found'); process.exit(2); }
const mutants = files.map((f) => load(join(here, f)));
const queue = [...mutants];
const results: Awaited<ReturnType<typeof check>>[] = [];
const started = Date.now();
// One PostgreSQL cluster for every mutant's tests (as npm test's global setup gives the suite).
const cluster = await startCluster();
exportCluster(cluster);
await Promise.all(Array.from({ length: PARALLEL }, async (_, slot) => {
  for (let m = queue.shift(); m; m = queue.shift()) {
    const r = await check(m, slot);
    results.push(r);
    console.log(`${r.verdict === 'killed' ? 'killed  ' : r.verdict.toUpperCase().padEnd(8)} ${m.name} (${(r.ms / 1000).toFixed(1)} s)${r.verdict === 'killed' ? '' : ` — ${m.what}\n         ${r.detail}`}`);
  }
}));
await cluster.stop();
rmSync(SLOTS, { recursive: true, force: true });
const bad = results.filter((r) => r.verdict !== 'killed');
console.log(`\n${results.length - bad.length}/${results.length} mutants killed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (bad.length > 0) {
  console.log(`not killed: ${bad.map((r) => `${r.m.name} (${r.verdict})`).join(', ')}`);
  process.exit(1);
}
