// Starts the shipped AuthZEN "Todo" example (examples/authzen-todo/) on a real server, in a
// scratch copy on any free port and the run's store, and gets the PEP's API key the README's way
// (an administrator logs in with the bootstrap secret; pep-token.sh prints the key).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { ManualClock } from '../../src/common/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { serve } from '../../src/cli/serve.ts';
import { testRunning } from './broker-view.ts';
import type { TestRunning } from './broker-view.ts';
import { testStoreConfig } from '../store/stores.ts';

export const TODO_EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'authzen-todo');
const MASTER_KEY = Buffer.alloc(32, 9).toString('base64');

export interface TodoExample {
  running: TestRunning;
  url: string;
  /** The todo backend's API key (the PEP's credential), from pep-token.sh. */
  pep: string;
  /** The administrator's CLI session the script logged in with. */
  adminSession: string;
  /** The scratch copy of the example. */
  dir: string;
  stop(): Promise<void>;
}

/** `customize` may change the scratch copy's config (and write files into `dir`) before the server starts. */
export async function startTodoExample(customize?: (doc: Document, dir: string) => void): Promise<TodoExample> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-authzen-'));
  const home = mkdtempSync(join(tmpdir(), 'pcx-authzen-home-'));
  cpSync(TODO_EXAMPLE, dir, { recursive: true, filter: (src) => !src.includes(`${TODO_EXAMPLE}/data`) });
  const store = await testStoreConfig();
  const doc = parseDocument(readFileSync(join(dir, 'portcullis.yaml'), 'utf8'));
  doc.setIn(['listen', 'port'], 0);
  if (store.yaml) {
    doc.setIn(['store'], doc.createNode({ kind: 'postgres', url_env: 'PCX_STORE_URL', pool: 10 }));
    doc.setIn(['audit', 'witness'], doc.createNode({ url: /url: "([^"]+)"/.exec(store.witness)![1] }));
  }
  customize?.(doc, dir);
  writeFileSync(join(dir, 'portcullis.yaml'), doc.toString());
  const env = { ...process.env, ...store.env };
  const running = testRunning(await serve(parseConfig(readFileSync(join(dir, 'portcullis.yaml'), 'utf8'), dir, env), { clock: new ManualClock(Date.now()), quiet: true, env: { PORTCULLIS_MASTER_KEY: MASTER_KEY, ...store.env } }));
  assert.equal(running.broker.readiness().store, store.yaml ? 'postgres' : 'sqlite', "the run's store");
  const secret = await running.broker.bootstrap();
  const { stdout } = await promisify(execFile)(join(dir, 'pep-token.sh'), {
    env: { ...process.env, PORTCULLIS_ADDR: running.url, PORTCULLIS_HOME: home, PORTCULLIS_BOOTSTRAP: secret!, PORTCULLIS_CLI: join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js') },
    encoding: 'utf8',
  });
  const pep = stdout.trim();
  assert.match(pep, /^pcx_/);
  const adminSession = (JSON.parse(readFileSync(join(home, 'session.json'), 'utf8')) as { session_token: string }).session_token;
  return {
    running,
    url: running.url,
    pep,
    adminSession,
    dir,
    async stop() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    },
  };
}
