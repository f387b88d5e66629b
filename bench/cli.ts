// CLI start-up (issue #8 item 22): wall time of `portcullis --version` and of one `authorize`
// against a running dev server, each as a ratio to a bare `node -e 0` measured in the same run,
// interleaved so load on the machine hits all three alike. Targets: ≤ 3× and ≤ 5×.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Emit = (line: Record<string, unknown>) => void;
const ROUNDS = 21;
const CLI = join(import.meta.dirname, '..', 'bin', 'portcullis.js');

function time(args: string[], env: NodeJS.ProcessEnv, input?: string): { ms: number; status: number | null } {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', ...(input !== undefined && { input }) });
  return { ms: performance.now() - t, status: r.status };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(emit: Emit): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-cli-'));
  const data = join(dir, 'data');
  const server = spawn(process.execPath, [CLI, 'dev', '--data', data, '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.once('exit', (c) => reject(new Error(`dev server exited ${c}`)));
    });
    const env: NodeJS.ProcessEnv = { ...process.env, PORTCULLIS_ADDR: url, PORTCULLIS_HOME: join(dir, 'home'), PORTCULLIS_DEV_DATA: data };
    delete env.PORTCULLIS_TOKEN;
    const token = spawnSync(process.execPath, [CLI, 'dev', 'token', '--sub', 'repo:acme/api'], { env, encoding: 'utf8' }).stdout;
    const login = time([CLI, 'login', '--token', '-'], env, token);
    if (login.status !== 0) throw new Error('bench login failed');
    const cases = {
      'node -e 0': ['-e', '0'],
      'portcullis --version': [CLI, '--version'],
      // The whole CLI path (no --version shortcut in bin/): commander, the handler, every group registered.
      'portcullis --help': [CLI, '--help'],
      'portcullis authorize': [CLI, 'authorize', 'db.select', 'Database::orders', '--reason', 'bench'],
    } as const;
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    for (const args of Object.values(cases)) time([...args], env); // warm the OS cache and Node's compile cache
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, args] of Object.entries(cases)) {
        const r = time([...args], env);
        if (r.status !== 0) throw new Error(`${name} exited ${r.status}`);
        times[name]!.push(r.ms);
      }
    }
    const base = median(times['node -e 0']!);
    for (const [name, xs] of Object.entries(times)) {
      const ms = median(xs);
      const target = name === 'portcullis --version' ? 3 : name === 'portcullis authorize' ? 5 : undefined;
      emit({ bench: 'cli', case: name, rounds: ROUNDS, median_ms: Math.round(ms * 10) / 10, p90_ms: Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]! * 10) / 10, ratio_to_node: Math.round((ms / base) * 100) / 100, ...(target !== undefined && { target_ratio: target, met: ms / base <= target }) });
    }
  } finally {
    server.kill('SIGINT');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}
