// The tests' view of a running broker: its public methods, with its domain services laid over it
// (`running.broker.audit.query(…)`, `running.broker.identities.get(…)`) through the test-only
// src/broker/internals.ts. The server itself reaches the domains only through the broker's methods.
import type { Broker } from '../../src/broker/index.ts';
import { brokerInternals } from '../../src/broker/internals.ts';
import type { BrokerServices } from '../../src/broker/internals.ts';
import type { Running } from '../../src/cli/serve.ts';

export type TestBroker = Broker & BrokerServices;
export type TestRunning = Omit<Running, 'broker'> & { broker: TestBroker };

/** The broker with its domain services readable by name (methods stay bound to the broker). */
export function withInternals(broker: Broker): TestBroker {
  const inner = brokerInternals(broker) as Record<string, unknown>;
  return new Proxy(broker, {
    get(target, prop) {
      if (typeof prop === 'string' && Object.hasOwn(inner, prop)) return inner[prop];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as TestBroker;
}

export function testRunning(running: Running): TestRunning {
  return { ...running, broker: withInternals(running.broker) };
}
