// Replicas as real `portcullis server` processes over one PostgreSQL store, for the cluster tests:
// start one on a config (ready when /readyz answers), call its API, poll, bootstrap, stop them all.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { freePort } from '../credentials/helpers.ts';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

export interface Replica {
  name: string;
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr: string;
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** One HTTP call to a replica's API (any server with a `url`); a body that is not JSON reads as `{}`. */
export async function call(r: { url: string }, method: string, path: string, body?: unknown, token?: string): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(r.url + path, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: res.status, body: {} };
  }
}

/** Polls until `check` holds, failing after `limitMs`; returns the milliseconds it took. */
export async function until(what: string, check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = performance.now();
  await eventually(what, async () => (await check()) || undefined, limitMs);
  return performance.now() - t0;
}

/** Polls `find` until it gives a value, failing after `limitMs`. */
export async function eventually<T>(what: string, find: () => Promise<T | undefined>, limitMs: number): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (performance.now() - t0 > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** An audit record as the API serves it; `time` is the writing server's clock. */
export interface AuditRecord {
  seq: number;
  time: string;
  type: string;
  actor: string;
  subject?: string;
  payload: Record<string, unknown>;
}

/** The records of one type in a stream (the store is shared: any replica answers for all). */
export async function auditRecords(r: Replica, stream: string, type: string, token: string): Promise<AuditRecord[]> {
  const res = await call(r, 'GET', `/v1/audit/${stream}?type=${encodeURIComponent(type)}&limit=9999`, undefined, token);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.events as AuditRecord[];
}

/** A CI issuer (trust `ci`, issuer https://ci.test, audience portcullis) whose key signs `token(repository)`. */
export function ciIssuer(): { jwk: Record<string, unknown>; token: (repository: string) => Promise<string>; login: (r: Replica, repository: string) => Promise<string> } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'ci', alg: 'EdDSA', use: 'sig' };
  const token = (repository: string) =>
    new SignJWT({ repository }).setProtectedHeader({ alg: 'EdDSA', kid: 'ci' }).setIssuer('https://ci.test').setAudience('portcullis').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  const login = async (r: Replica, repository: string): Promise<string> => {
    const res = await call(r, 'POST', '/v1/auth/token', { token: await token(repository) });
    assert.equal(res.status, 200, `login on ${r.name}: ${JSON.stringify(res.body)}`);
    return res.body.session_token as string;
  };
  return { jwk, token, login };
}

/** The replicas of one test file, and their scratch folder. */
export class Cluster {
  readonly dir: string;
  readonly replicas: Replica[] = [];

  constructor(prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
  }

  /** Starts `portcullis server --config config` on a free port; resolves when it answers /readyz. */
  async start<R extends Replica>(name: string, config: string, env: NodeJS.ProcessEnv, extra?: Omit<R, keyof Replica>): Promise<R> {
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN, 'server', '--config', config, '--port', String(port)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const r = { ...extra, name, url: `http://127.0.0.1:${port}`, child, stderr: '' } as R;
    child.stderr!.on('data', (d: Buffer) => (r.stderr += d.toString()));
    // Generous: under a loaded CI machine several server processes take a while to start.
    await until(`${name} ready`, async () => {
      if (child.exitCode !== null) assert.fail(`${name} exited: ${r.stderr}`);
      try {
        return (await fetch(`${r.url}/readyz`)).status === 200;
      } catch {
        return false;
      }
    }, 150_000);
    this.replicas.push(r);
    return r;
  }

  /**
   * The first administrator's session: exactly one replica printed the one-time bootstrap
   * credential (the store is shared); it is spent on the first replica.
   */
  async admin(): Promise<string> {
    const printed = this.replicas.filter((r) => r.stderr.includes('bootstrap credential'));
    assert.equal(printed.length, 1, 'one bootstrap credential for the cluster');
    const secret = /pcx_bootstrap_[A-Za-z0-9_-]+/.exec(printed[0]!.stderr)?.[0];
    assert.ok(secret, printed[0]!.stderr);
    const res = await call(this.replicas[0]!, 'POST', '/v1/auth/token', { bootstrap: secret });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.session_token as string;
  }

  /** Ends every replica still running (SIGTERM, waits for the exits) and removes the folder. */
  async stop(): Promise<void> {
    // A replica killed in a test has exited already (signalCode set): waiting for its exit would hang.
    const running = this.replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
    const exited = running.map((r) => new Promise((res) => r.child.once('exit', res)));
    for (const r of running) r.child.kill('SIGTERM');
    await Promise.all(exited);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
