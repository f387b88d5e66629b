// Opening a store in tests, over SQLite or PostgreSQL: `forEachStore` runs a repository test over
// both (every run); `testStore`/`testStoreConfig` give the store the rest of the suite runs over
// (SQLite, or PostgreSQL when PCX_TEST_STORE=postgres — `npm test` runs storage tests both ways).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { createServer } from 'node:http';
import type { Store } from '../../src/store/index.ts';
import { SqliteStore } from '../../src/store/sqlite/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { TEST_STORE, freshStoreUrl } from './pg.ts';

export type StoreKind = 'sqlite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

/** A new, empty store of the given kind (SQLite in `dataDir` or a fresh temporary directory). */
export async function openStore(kind: StoreKind, dataDir?: string): Promise<Store> {
  if (kind === 'sqlite') return SqliteStore.open(dataDir ?? mkdtempSync(join(tmpdir(), 'pcx-store-')));
  return PostgresStore.open(await freshStoreUrl(), { pool: 4 });
}

/**
 * Declares `name` once per store kind (`name [sqlite]`, `name [postgres]`); `fn` gets a function
 * that opens a new, empty store of that kind (closed after the test).
 */
export function forEachStore(name: string, fn: (open: () => Promise<Store>, kind: StoreKind) => Promise<void>): void {
  for (const kind of STORE_KINDS) {
    test(`${name} [${kind}]`, async (t) => {
      const opened: Store[] = [];
      t.after(async () => {
        for (const s of opened) await s.close();
      });
      await fn(async () => {
        const s = await openStore(kind);
        opened.push(s);
        return s;
      }, kind);
    });
  }
}

/** The store this run's store-agnostic tests use. */
export function testStore(dataDir?: string): Promise<Store> {
  return openStore(TEST_STORE, dataDir);
}

/**
 * For a config the test writes: the `store:` section (YAML for the top level) and its
 * environment, and the `witness` a PostgreSQL store requires (a flow-mapping member for the
 * `audit:` section, with its leading comma) — empty for SQLite; a fresh PostgreSQL database and
 * this process's witness receiver otherwise.
 */
export async function testStoreConfig(kind: StoreKind = TEST_STORE): Promise<{ yaml: string; env: Record<string, string>; witness: string }> {
  if (kind === 'sqlite') return { yaml: '', env: {}, witness: '' };
  return { yaml: 'store: { kind: postgres, url_env: PCX_STORE_URL, pool: 10 }\n', env: { PCX_STORE_URL: await freshStoreUrl() }, witness: `, witness: { url: "${await witnessUrl()}" }` };
}

let witness: Promise<string> | undefined;
/** Checkpoints published to this process's witness receiver (loopback HTTP). */
export const witnessed: unknown[] = [];

/** The URL of a witness receiver in this process (started on first use, never keeps the process alive). */
export function witnessUrl(): Promise<string> {
  witness ??= new Promise((resolve) => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        try {
          witnessed.push(JSON.parse(body));
        } catch {
          /* not JSON: still answered */
        }
        res.writeHead(204).end();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}/witness`);
    });
  });
  return witness;
}
