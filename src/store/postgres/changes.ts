// Cross-replica change notices over PostgreSQL LISTEN/NOTIFY: one dedicated listening connection
// per replica, checked every few seconds; after any reconnect every view resyncs (a notice sent
// while we were away is lost, so each view reloads in full before trusting its memory again).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { ChangeFeed, ChangeTopic } from '../ports.ts';
import type { PgDb } from './db.ts';
import { KeyedLock } from '../../common/keyed-lock.ts';

export const CHANGE_CHANNEL = 'portcullis_changes';
const TOPICS: ReadonlySet<string> = new Set<ChangeTopic>(['identity', 'session', 'keys', 'policy', 'grant', 'lease', 'signal']);
/** NOTIFY payloads are limited to 8000 bytes; keys are ids, far shorter. */
const MAX_KEY = 2048;

export interface PgChangeFeedOptions {
  /** How often the listening connection is checked (default 2 s). */
  heartbeatMs?: number;
  /** Called when a handler or the listener fails (never with the URL). */
  onError?: (err: unknown) => void;
}

type Handler = (key: string) => void | Promise<void>;

export class PgChangeFeed implements ChangeFeed {
  /** This replica's id in notices, so it skips its own. */
  readonly replica = randomUUID();
  readonly #db: PgDb;
  readonly #o: PgChangeFeedOptions;
  readonly #handlers = new Map<ChangeTopic, Set<Handler>>();
  readonly #resync = new Set<() => void | Promise<void>>();
  #client: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #order = new KeyedLock();
  #resyncTimer: NodeJS.Timeout | undefined;
  #everConnected = false;
  /** Resolves once the first LISTEN is in place (tests and startup wait for it). */
  readonly ready: Promise<void>;

  constructor(db: PgDb, options: PgChangeFeedOptions = {}) {
    this.#db = db;
    this.#o = options;
    this.ready = this.#connect();
    this.ready.catch(() => {}); // retried by the heartbeat; open() awaits it and reports
    this.#timer = setInterval(() => void this.#heartbeat(), options.heartbeatMs ?? 2000);
    this.#timer.unref();
  }

  async publish(topic: ChangeTopic, key: string): Promise<void> {
    if (key.length > MAX_KEY) throw new RangeError(`change key longer than ${MAX_KEY}`);
    await this.#db.notify(CHANGE_CHANNEL, JSON.stringify({ r: this.replica, t: topic, k: key }));
  }

  subscribe(topic: ChangeTopic, fn: Handler): () => void {
    let set = this.#handlers.get(topic);
    if (!set) this.#handlers.set(topic, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  onResync(fn: () => void | Promise<void>): () => void {
    this.#resync.add(fn);
    return () => this.#resync.delete(fn);
  }

  /** True while the listening connection is up (readiness). */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    const c = this.#client;
    this.#client = undefined;
    await c?.end().catch(() => {});
  }

  #connect(): Promise<void> {
    this.#connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.#db.url, application_name: 'portcullis-listen', keepAlive: true, connectionTimeoutMillis: 5000 });
      client.on('error', () => this.#lost(client));
      client.on('end', () => this.#lost(client));
      client.on('notification', (n) => this.#deliver(n.payload));
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANGE_CHANNEL}`);
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
      if (this.#closed) {
        await client.end().catch(() => {});
        return;
      }
      this.#client = client;
      // The first connection comes before any view loads; after a later one, views may be stale.
      if (this.#everConnected) await this.#resyncAll();
      this.#everConnected = true;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    void client.end().catch(() => {});
    if (!this.#closed) void this.#connect().catch((err: unknown) => this.#o.onError?.(err));
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed || this.#connecting) return;
    const client = this.#client;
    if (!client) {
      await this.#connect().catch((err: unknown) => this.#o.onError?.(err));
      return;
    }
    try {
      await Promise.race([
        client.query('SELECT 1'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('listening connection did not answer')), 2000).unref()),
      ]);
    } catch {
      this.#lost(client);
    }
  }

  async #resyncAll(): Promise<void> {
    for (const fn of this.#resync) {
      try {
        await fn();
      } catch (err) {
        this.#o.onError?.(err);
        this.#scheduleResync();
      }
    }
  }

  #deliver(payload: string | undefined): void {
    let msg: { r?: unknown; t?: unknown; k?: unknown };
    try {
      msg = JSON.parse(payload ?? '') as typeof msg;
    } catch {
      return; // not ours
    }
    if (msg.r === this.replica || typeof msg.t !== 'string' || !TOPICS.has(msg.t) || typeof msg.k !== 'string') return;
    const topic = msg.t as ChangeTopic;
    const key = msg.k;
    // One key's reloads run in order: a slow read of an older state never lands after a newer one.
    this.#order
      .run(`${topic}\0${key}`, async () => {
        for (const fn of this.#handlers.get(topic) ?? []) await fn(key);
      })
      .catch((err: unknown) => {
        // A view that could not reload may be stale: reload everything shortly.
        this.#o.onError?.(err);
        this.#scheduleResync();
      });
  }

  #scheduleResync(): void {
    if (this.#resyncTimer || this.#closed) return;
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = undefined;
      void this.#resyncAll();
    }, 1000);
    this.#resyncTimer.unref();
  }
}
