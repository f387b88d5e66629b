// Prometheus metrics; one registry per broker so tests can run several side by side.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'portcullis_decisions_total',
    help: 'Authorization decisions by result',
    labelNames: ['decision'] as const,
    registers: [this.registry],
  });
  readonly authn = new Counter({
    name: 'portcullis_authentications_total',
    help: 'Authentication attempts by result and reason',
    labelNames: ['result', 'reason', 'trust'] as const,
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'portcullis_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'portcullis_rate_limited_total',
    help: 'Requests to authentication endpoints refused by a rate limit, by endpoint and scope (address or key)',
    labelNames: ['endpoint', 'scope'] as const,
    registers: [this.registry],
  });
  readonly decisionSeconds = new Histogram({
    name: 'portcullis_decision_seconds',
    help: 'Time to decide and record one request',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry });
  }
}
