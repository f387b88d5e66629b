// The domain services behind a Broker, for tests and benchmarks only. The transports (server/,
// cli/) reach the domains through the broker's methods and admin APIs, never through this
// (test/server/layering.test.ts keeps it so).
import type { PortcullisConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import type { Store } from '../store/types.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { SpiffeCaStore } from '../credentials/index.ts';
import type { createServices } from './services.ts';
import type { Broker } from './index.ts';
import type { Governance } from './governance.ts';

/** What a broker is made of: its configuration, clock, stores and domain services. */
export type BrokerServices = ReturnType<typeof createServices> & {
  config: PortcullisConfig;
  clock: Clock;
  store: Store;
  keyring: Keyring;
  spiffeCa: SpiffeCaStore;
  /** Access reviews and lifecycle (and their periodic job). */
  governance: Governance;
};

let peek: ((b: Broker) => BrokerServices) | undefined;

/** Called once, by the Broker class itself. */
export function exposeInternals(fn: (b: Broker) => BrokerServices): void {
  peek ??= fn;
}

/** The domain services of a broker (tests and benchmarks only). */
export function brokerInternals(b: Broker): BrokerServices {
  if (!peek) throw new Error('the Broker class is not loaded');
  return peek(b);
}
