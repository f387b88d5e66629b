// Leadership of a store only one process uses (SQLite): that process always leads.
import type { Leadership } from './ports.ts';

export class SoleLeader implements Leadership {
  readonly leading = true;
  start(): void {}
  onChange(): () => void {
    return () => {};
  }
  async fence(): Promise<void> {}
  /** One process: its own intents are known in memory, any other on record is a dead process's. */
  async hold(): Promise<() => Promise<void>> {
    return async () => {};
  }
  ifAbandoned<T>(_key: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }
}
