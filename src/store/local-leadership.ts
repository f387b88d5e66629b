// Leadership of a store only one process uses (SQLite): that process always leads.
import type { Leadership } from './ports.ts';

export class SoleLeader implements Leadership {
  readonly leading = true;
  start(): void {}
  onChange(): () => void {
    return () => {};
  }
  async fence(): Promise<void> {}
}
