// The call history of one assignment on this replica: what policy sees as taint (labels of the
// tools called so far, the tools themselves) and budgets (calls of a tool in the last minute).
// In memory, per gateway: a second replica keeps its own (docs/agents.md "Limits").

const WINDOW_MS = 60_000;

export class Ledger {
  readonly labels = new Set<string>();
  readonly called = new Set<string>();
  readonly #calls = new Map<string, number[]>();
  /** When it was last used (idle ledgers are dropped). */
  touched = Date.now();

  /** Calls of `tool` in the last minute before `now`. */
  recent(tool: string, now: number): number {
    const list = this.#calls.get(tool);
    if (!list) return 0;
    while (list.length > 0 && list[0]! <= now - WINDOW_MS) list.shift();
    return list.length;
  }

  /** An allowed call: it counts against the budget and its labels taint what follows. */
  add(tool: string, labels: readonly string[], now: number): void {
    this.touched = now;
    this.called.add(tool);
    for (const l of labels) this.labels.add(l);
    const list = this.#calls.get(tool) ?? [];
    list.push(now);
    this.#calls.set(tool, list);
  }
}

/** Ledgers by key (`asg:<id>` or `session:<id>`), dropped after an hour unused. */
export class Ledgers {
  readonly #m = new Map<string, Ledger>();

  get(key: string): Ledger {
    let l = this.#m.get(key);
    if (!l) {
      if (this.#m.size > 10_000) this.sweep(Date.now());
      l = new Ledger();
      this.#m.set(key, l);
    }
    l.touched = Date.now();
    return l;
  }

  sweep(now: number): void {
    for (const [k, l] of this.#m) if (now - l.touched > 3_600_000) this.#m.delete(k);
  }
}
