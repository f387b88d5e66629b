// `npm run bench`: every benchmark prints JSON lines; speed goals are ratios measured in the same
// run (see docs/benchmarks.md). Run one with `npm run bench -- engine`.
import { cpus, totalmem } from 'node:os';

type Emit = (line: Record<string, unknown>) => void;
const suites: Record<string, () => Promise<{ run: (emit: Emit) => Promise<void> }>> = {
  engine: () => import('./engine.ts'),
  decisions: () => import('./decisions.ts'),
  audit: () => import('./audit.ts'),
  http: () => import('./http.ts'),
  credentials: () => import('./credentials.ts'),
  cli: () => import('./cli.ts'),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const emit: Emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
emit({ bench: 'machine', node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, mem_gib: Math.round(totalmem() / 2 ** 30), date: new Date().toISOString() });
for (const [name, load] of Object.entries(suites)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  process.stderr.write(`bench ${name}…\n`);
  const started = performance.now();
  await (await load()).run(emit);
  process.stderr.write(`bench ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}
