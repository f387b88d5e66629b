// The reaper: revokes leases past their end and retries failed revocations with back-off.
// A revocation that keeps failing stays `revoke_failed` with its last error, visible in lists
// and retried forever at the capped interval.
import type { Clock } from '../common/clock.ts';
import type { LeaseRepository } from './ports.ts';
import type { LeaseRevoker } from './revocation.ts';

export interface ReaperOptions {
  intervalMs?: number;
  /** Runs only while this replica leads the cluster jobs (default: always). */
  leads?: () => boolean;
}

export interface ReaperRun {
  expired: number;
  retried: number;
  failed: number;
}

/** Delay before retry `attempt` (1-based): 1s, 2s, 4s … capped at 5 minutes. */
export function backoffMs(attempt: number, baseMs = 1000, maxMs = 300_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
}

export class Reaper {
  readonly #store: LeaseRepository;
  readonly #revoker: LeaseRevoker;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #leads: () => boolean;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReaperRun> | undefined;

  constructor(store: LeaseRepository, revoker: LeaseRevoker, clock: Clock, opts: ReaperOptions = {}) {
    this.#store = store;
    this.#revoker = revoker;
    this.#clock = clock;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#leads = opts.leads ?? (() => true);
  }

  /** One pass; concurrent calls share the pass in progress. */
  runOnce(): Promise<ReaperRun> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<ReaperRun> {
    const run: ReaperRun = { expired: 0, retried: 0, failed: 0 };
    for (let pass = 0; pass < 100; pass++) {
      const due = await this.#store.due(this.#clock.now());
      if (due.length === 0) return run;
      let progressed = false;
      for (const l of due) {
        if (!this.#leads()) return run; // another replica took over: it reaps the rest
        const retry = l.status === 'revoke_failed';
        const expired = l.expiresAt <= this.#clock.now();
        const r = await this.#revoker
          .revokeLease(l.id, { by: 'system:reaper', reason: expired && !retry ? 'expired' : (l.revokeReason ?? 'expired'), final: expired ? 'expired' : 'revoked' })
          .catch((e: Error) => ({ leaseId: l.id, status: 'revoke_failed' as const, error: e.message }));
        if (r.status === 'revoke_failed') run.failed++;
        else if (r.status === 'revoked' || r.status === 'expired') {
          progressed = true;
          if (retry) run.retried++;
          else run.expired++;
        }
      }
      // Failed ones got a future next_attempt_at; stop when a pass made no progress.
      if (!progressed) return run;
    }
    return run;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#leads()) this.runOnce().catch(() => {});
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
  }
}
