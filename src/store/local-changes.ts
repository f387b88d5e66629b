// The change feed of a store only one process uses (SQLite): every view is updated by the
// process's own writes, so there is nobody to tell.
import type { ChangeFeed } from './ports.ts';

export class LocalChangeFeed implements ChangeFeed {
  readonly listening = true;
  async publish(): Promise<void> {}
  subscribe(): () => void {
    return () => {};
  }
  onResync(): () => void {
    return () => {};
  }
}
