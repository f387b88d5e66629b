// The dev server's week of demo history: logins, decisions, an API key, an access request — made
// through the broker itself, on a clock that starts seven days ago and moves forward, so governance
// (usage, suggestions, replay, findings, evidence) has real, hash-chained records to show.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../common/clock.ts';
import type { Clock } from '../common/clock.ts';
import type { Broker, Caller } from '../broker/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import { devToken } from './dev.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Written once the history is in: a data directory is seeded once (and again after `--fresh`). */
const MARKER = 'dev-history.json';

export interface SeedResult {
  from: string;
  to: string;
  logins: number;
  decisions: number;
  ms: number;
}

/** Whether this data directory is new (no store yet) and has not been seeded. */
export function historyPending(loaded: LoadedConfig): boolean {
  const { config } = loaded;
  return config.store.kind === 'sqlite' && !existsSync(join(config.data_dir, MARKER)) && !existsSync(join(config.data_dir, 'portcullis.db'));
}

/**
 * The dev broker's clock: seven days ago at 07:00 UTC while the history is made (the broker opens
 * then, so the declared identities and keys date from then), the real time once `release()`d.
 */
export class HistoryClock implements Clock {
  readonly start: number;
  /** The history ends before this (a few minutes before the real time it was made at). */
  readonly until: number;
  #manual: ManualClock | undefined;

  constructor(now = Date.now()) {
    this.start = Math.floor(now / DAY) * DAY - 7 * DAY + 7 * HOUR;
    this.until = now - 5 * 60_000;
    this.#manual = new ManualClock(this.start);
  }
  now(): number {
    return this.#manual?.now() ?? Date.now();
  }
  /** Moves the history's time forward to `t`; false when `t` is past its end (or released). */
  moveTo(t: number): boolean {
    if (!this.#manual || t > this.until) return false;
    if (t > this.#manual.now()) this.#manual.set(t);
    return true;
  }
  advance(ms: number): void {
    this.moveTo(this.now() + ms);
  }
  release(): void {
    this.#manual = undefined;
  }
}

/**
 * Makes the history on a broker opened on a new data directory with `clock` (before it serves),
 * then hands the broker the real time and marks the data directory seeded.
 */
export async function seedDevHistory(broker: Broker, clock: HistoryClock, o: { dataDir: string; port: number }): Promise<SeedResult> {
  const started = Date.now();
  const history = new History(broker, clock, o.dataDir, o.port);
  try {
    await history.run(clock.start - 7 * HOUR);
  } finally {
    clock.release();
  }
  const result = { from: new Date(clock.start).toISOString(), to: new Date(history.last).toISOString(), logins: history.logins, decisions: history.decisions, ms: Date.now() - started };
  writeFileSync(join(o.dataDir, MARKER), JSON.stringify(result), { mode: 0o600 });
  return result;
}

/** One decision to ask for: action, resource (`Type::id`), purpose. */
type Ask = [string, string, Record<string, string>];

type Who = { sub: string } | { user: string } | { agent: string };

class History {
  logins = 0;
  decisions = 0;
  last = 0;
  readonly #b: Broker;
  readonly #clock: HistoryClock;
  readonly #dataDir: string;
  readonly #port: number;

  constructor(b: Broker, clock: HistoryClock, dataDir: string, port: number) {
    this.#b = b;
    this.#clock = clock;
    this.#dataDir = dataDir;
    this.#port = port;
  }

  /** Moves the clock to `t` (never backwards); false when `t` is past the end of the history. */
  #at(t: number): boolean {
    const ok = this.#clock.moveTo(t);
    if (ok) this.last = this.#clock.now();
    return ok;
  }

  async #login(who: Who, ip: string, claims?: Record<string, string | string[]>): Promise<Caller> {
    const token = await devToken(this.#dataDir, this.#port, { ...who, ...(claims && { claims }), at: this.#clock.now() });
    const r = await this.#b.login({ type: 'jwt', token }, ip);
    this.logins++;
    const session = await this.#b.sessionFromToken(r.session_token, ip);
    return { ...session, sourceIp: ip };
  }

  /** Several decisions at once, as a job asking in parallel (one group commit of the audit log, not one each). */
  async #batch(c: Caller, asks: Ask[]): Promise<void> {
    this.#clock.advance(30_000);
    await Promise.all(asks.map(([action, resource, purpose]) => this.#ask(c, action, resource, purpose)));
    this.last = this.#clock.now();
  }

  async #ask(c: Caller, action: string, resource: string, purpose: Record<string, string>): Promise<void> {
    const [type, id] = resource.split('::') as [string, string];
    await this.#b.authorize(c, { action, resource: { type, id }, context: { purpose } }, c.sourceIp);
    this.decisions++;
  }

  async #decide(c: Caller, action: string, resource: string, purpose: Record<string, string> = {}): Promise<void> {
    this.#clock.advance(20_000 + (this.decisions % 7) * 6_000);
    await this.#ask(c, action, resource, purpose);
    this.last = this.#clock.now();
  }

  /** Day 0 is seven days ago, day 7 today (until a few minutes ago). */
  async run(day0: number): Promise<void> {
    const b = this.#b;
    const at = (day: number, hour: number) => this.#at(day0 + day * DAY + hour * HOUR + ((day * 7 + hour) % 10) * 60_000);
    // Day 0: the administrator mints an API key for the reports job's old cron host — never used
    // afterwards, so it becomes due for rotation, expiring and unused.
    if (!at(0, 8)) return;
    const admin0 = await this.#login({ user: 'admin@example.com' }, '10.0.9.5');
    await b.admin.apiKeys.mint(admin0, { identity: 'workload:github/acme/reports', ttl: '10d', rotate_after: '5d', description: 'legacy cron host' });
    for (let day = 0; day <= 7; day++) await this.#day(day, at);
    // Today's snapshot too (as of the end of the history), so the trend ends today.
    this.#at(this.#clock.until);
    await b.governanceSweep();
  }

  /** One day of the history: each step only while its time is before the end of the history. */
  async #day(day: number, at: (day: number, hour: number) => boolean): Promise<void> {
    const b = this.#b;
    // The payments API from the CI runners, twice a day, each run from another address (one
    // identity shared by many hosts); it reads orders with a reason, writes with a ticket.
    if (!at(day, 9)) return;
    const api = await this.#login({ sub: 'repo:acme/api' }, `10.0.1.${11 + 2 * day}`);
    await this.#batch(api, [
      ...Array.from({ length: 3 }, (): Ask => ['db.select', 'Database::orders', { reason: 'order sync' }]),
      ['db.select', 'Table::orders.payments', { reason: 'settlement report' }],
      ...(day % 2 === 0 ? [['db.insert', 'Table::orders.payments', { ticket: `OPS-${100 + day}` }] satisfies Ask] : []),
    ]);
    await this.#decide(api, 'db.select', 'Database::orders'); // no purpose given: denied
    if (day === 3) await this.#decide(api, 'db.select', 'Database::analytics', { reason: 'curious' }); // the boundary guard
    // The support agent reads order status for tickets across the bridge; a write is refused.
    if (!at(day, 11)) return;
    const bot = await this.#login({ agent: 'support-bot' }, '10.0.4.20');
    await this.#batch(bot, Array.from({ length: 3 }, (_, i): Ask => ['db.select', 'Database::orders', { ticket: `SUP-${4000 + day * 10 + i}` }]));
    if (day === 4) await this.#decide(bot, 'db.update', 'Table::orders.payments', { ticket: 'SUP-4042' });
    // The administrator looks at the inventory.
    if (!at(day, 14)) return;
    const admin = await this.#login({ user: 'admin@example.com' }, '10.0.9.5');
    await b.admin.identities.list(admin);
    // Day 6: alice asks for read access to the orders database; bob and carol approve.
    if (day === 6) {
      if (!at(day, 15)) return;
      const alice = await this.#login({ user: 'alice@example.com' }, '10.0.8.31');
      const req = await b.admin.access.createRequest(alice, { target: { kind: 'resource', resource: { type: 'Database', id: 'orders' }, actions: ['db.select'] }, duration_ms: 2 * HOUR, reason: 'refund investigation', ticket: 'INC-77' });
      for (const reviewer of ['bob@example.com', 'carol@example.com']) {
        this.#clock.advance(7 * 60_000);
        const r = await this.#login({ user: reviewer }, '10.0.8.40');
        await b.admin.access.review(r, req.request.id, 'approve', 'ok for INC-77');
      }
      await this.#decide(alice, 'db.select', 'Database::orders', { reason: 'refund investigation', ticket: 'INC-77' });
    }
    if (!at(day, 16)) return;
    const api2 = await this.#login({ sub: 'repo:acme/api' }, `10.0.1.${12 + 2 * day}`);
    await this.#batch(api2, Array.from({ length: 2 }, (): Ask => ['db.select', 'Database::orders', { reason: 'order sync' }]));
    // The nightly reports job reads analytics on days 0 and 1 — then its pipeline moved elsewhere.
    if (day < 2) {
      if (!at(day, 20)) return;
      const reports = await this.#login({ sub: 'repo:acme/reports' }, '10.0.2.7');
      await this.#decide(reports, 'db.select', 'Database::analytics', { reason: 'nightly report' });
    }
    // The governance job at the end of the day: today's findings snapshot (the findings trend).
    if (!at(day, 23)) return;
    await b.governanceSweep();
  }
}
