// Cluster-job leadership over PostgreSQL: the leader holds a session advisory lock on its own
// connection (released by the server the moment that connection dies, e.g. kill -9) and bumps a
// fencing epoch when it takes over; `fence()` checks the epoch under a shared row lock, so a
// deposed leader's job transaction fails instead of writing over its successor's.
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Leadership } from '../ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';
import { PortcullisError } from '../../common/errors.ts';

export const MIGRATIONS: PgDomainMigrations = {
  domain: 'cluster',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE cluster_leader (
             name TEXT PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL);`,
    },
  ],
};

/** This replica no longer leads: a job's transaction is rolled back. */
export class NotLeader extends PortcullisError {
  constructor() {
    super('not_leader', 503, 'this replica no longer leads the cluster jobs; another replica took over');
  }
}

/** Advisory-lock key of the jobs leadership ("pcx-lead"). */
const LEAD_LOCK = 0x7063782d6c656164n;
const NAME = 'jobs';

/** Advisory-lock key of an intent (its own namespace within the 64-bit key space). */
function intentKey(key: string): string {
  return createHash('sha256').update(`pcx-intent:${key}`).digest().readBigInt64BE(0).toString();
}

export interface PgLeadershipOptions {
  /** How often a follower tries to take the lead and a leader checks it still holds it (default 1 s). */
  pollMs?: number;
  onError?: (err: unknown) => void;
  /** Where the replica's own session connects (default: the store's URL; tests route it through a proxy they can cut). */
  sessionUrl?: string;
}

export class PgLeadership implements Leadership {
  readonly id = randomUUID();
  readonly #db: PgDb;
  readonly #o: PgLeadershipOptions;
  readonly #listeners = new Set<(leading: boolean) => void>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #epoch: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #closed = false;

  constructor(db: PgDb, options: PgLeadershipOptions = {}) {
    this.#db = db;
    this.#o = options;
  }

  /** Starts trying to lead (at once, then every pollMs). */
  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => void this.tick(), this.#o.pollMs ?? 1000);
    this.#timer.unref();
    void this.tick();
  }

  get leading(): boolean {
    return this.#epoch !== undefined;
  }

  /** The fencing epoch while leading. */
  get epoch(): number | undefined {
    return this.#epoch;
  }

  onChange(fn: (leading: boolean) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async fence(): Promise<void> {
    const epoch = this.#epoch;
    if (epoch === undefined) throw new NotLeader();
    const row = await this.#db.one<{ epoch: number }>('SELECT epoch FROM cluster_leader WHERE name = $1 FOR SHARE', [NAME]);
    if (row?.epoch !== epoch) {
      this.#step(undefined);
      throw new NotLeader();
    }
  }

  /** One round: take the lead if free, or check we still hold it. */
  tick(): Promise<void> {
    this.#ticking ??= this.#round()
      .catch((err: unknown) => {
        this.#o.onError?.(err);
        this.#drop();
      })
      .finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  /** The replica's own session: the leadership lock and the intent holds live on it. */
  #connection(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.#o.sessionUrl ?? this.#db.url, application_name: 'portcullis-leader', keepAlive: true, connectionTimeoutMillis: 5000 });
      client.on('error', () => this.#drop(client));
      client.on('end', () => this.#drop(client));
      try {
        await client.connect();
        // A replica cut off without a FIN is noticed by the server within about 10 s.
        await client.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 2');
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
      if (this.#closed) {
        await client.end().catch(() => {});
        throw new Error('leadership is closed');
      }
      this.#client = client;
      return client;
    })().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async hold(key: string): Promise<() => Promise<void>> {
    const client = await this.#connection();
    const k = intentKey(key);
    const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [k]);
    // Only a reconcile deciding this very intent holds it, and it cannot exist before this hold.
    if (!r.rows[0]?.ok) throw new Error(`intent ${key} is held elsewhere`);
    return async () => {
      // A session replaced since has lost the hold with the old one.
      if (this.#client === client) await client.query('SELECT pg_advisory_unlock($1)', [k]).catch(() => {});
    };
  }

  ifAbandoned<T>(key: string, fn: () => Promise<T>): Promise<T | undefined> {
    return this.#db.transaction(async () => {
      const r = await this.#db.one<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [intentKey(key)]);
      return r?.ok ? fn() : undefined;
    });
  }

  async #round(): Promise<void> {
    if (this.#closed) return;
    const client = await this.#connection();
    const timeout = (ms: number) => new Promise<never>((_, reject) => setTimeout(() => reject(new Error('leadership connection did not answer')), ms).unref());
    if (this.#epoch !== undefined) {
      // Still ours? The lock lives as long as this connection; the epoch row says nobody took over.
      const r = await Promise.race([client.query<{ epoch: number; holder: string }>('SELECT epoch, holder FROM cluster_leader WHERE name = $1', [NAME]), timeout(2000)]);
      if (Number(r.rows[0]?.epoch) !== this.#epoch || r.rows[0]?.holder !== this.id) this.#drop();
      return;
    }
    const got = await Promise.race([client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEAD_LOCK.toString()]), timeout(2000)]);
    if (!got.rows[0]?.ok) return;
    const r = await client.query<{ epoch: string }>(
      `INSERT INTO cluster_leader (name, epoch, holder, since) VALUES ($1, 1, $2, now())
       ON CONFLICT (name) DO UPDATE SET epoch = cluster_leader.epoch + 1, holder = $2, since = now()
       RETURNING epoch`,
      [NAME, this.id],
    );
    this.#step(Number(r.rows[0]!.epoch));
  }

  /** Lost the connection (and with it the lock and the intent holds): stop leading now, reconnect on the next round. */
  #drop(which?: pg.Client): void {
    const c = this.#client;
    if (which && which !== c) return; // an earlier session's late event
    this.#client = undefined;
    if (c) void c.end().catch(() => {});
    this.#step(undefined);
  }

  #step(epoch: number | undefined): void {
    const was = this.leading;
    this.#epoch = epoch;
    if (was === this.leading) return;
    for (const fn of this.#listeners) {
      try {
        fn(this.leading);
      } catch (err) {
        this.#o.onError?.(err);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ticking;
    const c = this.#client;
    this.#client = undefined;
    this.#step(undefined);
    // Ending the session releases the advisory lock at once, so a successor takes over promptly.
    // A connection cut off without a FIN never answers the goodbye: give up on it after 1 s.
    if (c) await Promise.race([c.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
