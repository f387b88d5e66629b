// The dev server's first start (issue #12: a week of demo history made through the broker before it
// listens) against a later start of the same data directory (nothing to make), interleaved over a
// few fresh data directories so load hits both alike: wall time to "dev server on", its ratio, and
// the seeding's own figure from its stderr line. Goal: the history adds a second or two at most.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Emit = (line: Record<string, unknown>) => void;
const ROUNDS = 3;
const CLI = join(import.meta.dirname, '..', 'bin', 'portcullis.js');

/** Starts `portcullis dev` on `data`, waits until it serves, stops it: the wall time and its stderr. */
async function start(data: string): Promise<{ ms: number; stderr: string }> {
  const t = performance.now();
  const proc = spawn(process.execPath, [CLI, 'dev', '--data', data, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Portcullis dev server on')) resolve();
    });
    proc.once('exit', (c) => reject(new Error(`dev server exited ${c}: ${err}`)));
  });
  const ms = performance.now() - t;
  proc.kill('SIGINT');
  await exited;
  return { ms, stderr: err };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(emit: Emit): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-devhist-'));
  try {
    const first: number[] = [];
    const later: number[] = [];
    const seeding: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const data = join(dir, `d${i}`);
      const a = await start(data);
      const s = /demo history: .*\(([\d.]+) s\)/.exec(a.stderr);
      if (!s) throw new Error(`the first start made no history: ${a.stderr}`);
      first.push(a.ms);
      seeding.push(Number(s[1]) * 1000);
      const b = await start(data);
      if (b.stderr.includes('seeding')) throw new Error('the second start seeded again');
      later.push(b.ms);
    }
    const f = median(first);
    const l = median(later);
    emit({ bench: 'dev-history', rounds: ROUNDS, first_start_ms: Math.round(f), later_start_ms: Math.round(l), added_ms: Math.round(f - l), seeding_ms: Math.round(median(seeding)), ratio_first_to_later: Math.round((f / l) * 100) / 100 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
