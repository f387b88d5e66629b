// `npm test`'s global setup: one embedded PostgreSQL cluster for the whole run (test/store/pg.ts),
// its URLs exported to every test process through the environment.
import { exportCluster, startCluster } from './pg.ts';
import type { TestCluster } from './pg.ts';

let running: TestCluster | undefined;

export async function globalSetup(): Promise<void> {
  running = await startCluster();
  exportCluster(running);
}

export async function globalTeardown(): Promise<void> {
  await running?.stop();
}
