// The call history a session's calls are decided on — what policy sees as taint (labels and tools
// called so far) and budgets (calls of a tool in the last minute): an assignment's is kept by the
// store through the GatewayHost (shared by every replica); a session without one keeps its own here.
import type { Assignment, AssignmentCalls, CallHistory, CallReservation } from '../../agents/types.ts';
import { CALL_WINDOW_MS } from '../../agents/types.ts';

/** Counts a session's calls: `reserve` reads the history and counts one call atomically; `release` uncounts a refused one. */
export interface CallLedger {
  reserve(tool: string, labels: readonly string[], cap: number): Promise<CallReservation>;
  release(id: string, tool: string): Promise<void>;
  history(): Promise<CallHistory>;
}

/** An assignment's ledger: the store's, through the host, whichever replica the call reaches. */
export function assignmentLedger(calls: AssignmentCalls, a: Assignment): CallLedger {
  return {
    reserve: (tool, labels, cap) => calls.reserveCall({ assignmentId: a.id, tool, labels, expiresAt: a.expiresAt, cap }),
    release: (id) => calls.releaseCall(id),
    history: () => calls.callHistory(a.id),
  };
}

/** The ledger of one session without an assignment (a session lives on one replica), in memory. */
export class SessionLedger implements CallLedger {
  readonly #tools = new Map<string, { labels: readonly string[]; live: number }>();
  /** Calls in the window, oldest first, by id. */
  readonly #calls = new Map<string, { tool: string; at: number }>();
  #n = 0;

  reserve(tool: string, labels: readonly string[], cap: number): Promise<CallReservation> {
    const h = this.#now();
    const recent = h.recent[tool] ?? 0;
    if (cap > 0 && recent >= cap) return Promise.resolve({ labels: h.labels, called: h.called, recent });
    const id = String(++this.#n);
    this.#calls.set(id, { tool, at: Date.now() });
    const t = this.#tools.get(tool);
    this.#tools.set(tool, { labels, live: (t?.live ?? 0) + 1 });
    return Promise.resolve({ id, labels: h.labels, called: h.called, recent });
  }

  release(id: string, tool: string): Promise<void> {
    this.#calls.delete(id);
    const t = this.#tools.get(tool);
    if (t) t.live -= 1;
    return Promise.resolve();
  }

  history(): Promise<CallHistory> {
    return Promise.resolve(this.#now());
  }

  #now(): CallHistory {
    const since = Date.now() - CALL_WINDOW_MS;
    const recent: Record<string, number> = {};
    for (const [id, c] of this.#calls) {
      if (c.at <= since) this.#calls.delete(id);
      else recent[c.tool] = (recent[c.tool] ?? 0) + 1;
    }
    const labels = new Set<string>();
    const called: string[] = [];
    for (const [tool, t] of this.#tools) {
      if (t.live <= 0) continue;
      called.push(tool);
      for (const l of t.labels) labels.add(l);
    }
    return { labels: [...labels].sort(), called: called.sort(), recent };
  }
}
