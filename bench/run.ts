// `npm run bench`: every benchmark prints JSON lines; speed goals are ratios measured in the same
// run (see docs/benchmarks.md). Run one with `npm run bench -- engine`. Every suite runs to the
// end: a suite that throws is reported on its own JSON line and the run goes on; the exit status
// is non-zero if any failed.
import { cpus, totalmem } from 'node:os';

export type Emit = (line: Record<string, unknown>) => void;
export type Suite = () => Promise<{ run: (emit: Emit) => Promise<void> }>;

export const SUITES: Record<string, Suite> = {
  engine: () => import('./engine.ts'),
  decisions: () => import('./decisions.ts'),
  audit: () => import('./audit.ts'),
  http: () => import('./http.ts'),
  credentials: () => import('./credentials.ts'),
  cli: () => import('./cli.ts'),
  cluster: () => import('./cluster.ts'),
  gateway: () => import('./gateway.ts'),
  governance: () => import('./governance.ts'),
  mcp: () => import('./mcp.ts'),
  'dev-history': () => import('./dev-history.ts'),
};

/** Runs the wanted suites (all when none named) in order; returns the names of those that failed. */
export async function runSuites(suites: Record<string, Suite>, wanted: readonly string[], emit: Emit, log: (s: string) => void = (s) => process.stderr.write(s)): Promise<string[]> {
  const failed: string[] = [];
  for (const [name, load] of Object.entries(suites)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    log(`bench ${name}…\n`);
    const started = performance.now();
    const seconds = (): number => Math.round(performance.now() - started) / 1000;
    try {
      await (await load()).run(emit);
      emit({ bench: name, suite: 'done', seconds: seconds() });
      log(`bench ${name} done in ${seconds().toFixed(1)} s\n`);
    } catch (err) {
      failed.push(name);
      emit({ bench: name, suite: 'failed', seconds: seconds(), error: (err as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(err) });
      log(`bench ${name} FAILED after ${seconds().toFixed(1)} s: ${(err as Error)?.message ?? String(err)}\n`);
    }
  }
  return failed;
}

if (import.meta.main) {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !(w in SUITES));
  if (unknown.length > 0) {
    process.stderr.write(`unknown suite ${unknown.join(', ')} (suites: ${Object.keys(SUITES).join(', ')})\n`);
    process.exit(2);
  }
  const emit: Emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
  emit({ bench: 'machine', node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, mem_gib: Math.round(totalmem() / 2 ** 30), date: new Date().toISOString() });
  const failed = await runSuites(SUITES, wanted, emit);
  if (failed.length > 0) {
    process.stderr.write(`bench: ${failed.length} suite(s) failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}
