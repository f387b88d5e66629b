// Prometheus metrics; one registry per broker so tests can run several side by side. Gauges of
// state (active leases, grants, the audit backlog, checkpoint age) are read when scraped, through
// `observe()` callbacks the broker installs; counters and histograms are fed where things happen.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the gauges read at scrape time (installed by the broker once its services exist). */
export interface MetricSources {
  activeLeases(): Promise<Record<string, number>>;
  activeGrants(): Promise<number>;
  auditBacklog(): { queued: number; batchesInFlight: number };
  /** Seconds since this replica last signed a checkpoint of each stream (streams it has signed). */
  checkpointAges(): Record<string, number>;
}

const LATENCY = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export class Metrics {
  readonly registry = new Registry();
  #sources: MetricSources | undefined;

  /** A counter in this registry. */
  #counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
  /** A histogram in this registry, with these buckets (seconds). */
  #histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  readonly decisions = this.#counter('portcullis_decisions_total', 'Authorization decisions by result and engine', ['decision', 'engine']);
  readonly decisionSeconds = this.#histogram('portcullis_decision_seconds', 'Time to decide and record one request, by engine', ['engine'], LATENCY);
  readonly authn = this.#counter('portcullis_authentications_total', 'Authentication attempts by method, result and reason', ['result', 'reason', 'trust']);
  readonly httpRequests = this.#counter('portcullis_http_requests_total', 'HTTP requests by route and status', ['route', 'status']);
  readonly httpSeconds = this.#histogram('portcullis_http_request_duration_seconds', 'HTTP request latency by route and method', ['route', 'method'], LATENCY);
  readonly rateLimited = this.#counter('portcullis_rate_limited_total', 'Requests to authentication endpoints refused by a rate limit, by endpoint and scope (address or key)', ['endpoint', 'scope']);
  readonly issuance = this.#counter('portcullis_credential_issuance_total', 'Credential issuance attempts by kind, target and result (issued, denied, failed)', ['kind', 'target', 'result']);
  readonly revocations = this.#counter('portcullis_credential_revocations_total', 'Lease revocations by kind and result (revoked, expired, revoke_failed)', ['kind', 'result']);
  readonly revocationSeconds = this.#histogram('portcullis_credential_revocation_seconds', 'Time from the start of a revocation to the credential ended at its target, by kind', ['kind'], [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  readonly auditBatchSeconds = this.#histogram('portcullis_audit_append_seconds', 'Time to write one group-committed batch of audit events durably, by result', ['result'], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
  readonly auditEvents = this.#counter('portcullis_audit_events_total', 'Audit events written (ok) or refused with their batch (failed)', ['result']);
  readonly webhookDeliveries = this.#counter('portcullis_webhook_deliveries_total', 'Webhook delivery attempts by result (delivered, retry, failed)', ['result']);

  /** The decision engine the labels name (`compiled` or `wasm`). */
  readonly engine: string;

  /** One decision made (and, for requests decided end to end, how long deciding and recording took). */
  decided(decision: string, seconds?: number): void {
    this.decisions.inc({ decision, engine: this.engine });
    if (seconds !== undefined) this.decisionSeconds.observe({ engine: this.engine }, seconds);
  }

  constructor(opts: { collectDefaults?: boolean; engine?: string } = {}) {
    this.engine = opts.engine ?? 'compiled';
    const collectDefaults = opts.collectDefaults ?? false;
    if (collectDefaults) {
      collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
      // Gauges named like counters (promtool rejects them); the handle and request counts they give
      // are of little use to an operator anyway.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(`portcullis_${name}`);
    }
    const sources = () => this.#sources;
    new Gauge({
      name: 'portcullis_leases_active',
      help: 'Active credential leases by kind',
      labelNames: ['kind'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [kind, n] of Object.entries((await sources()?.activeLeases()) ?? {})) this.set({ kind }, n);
      },
    });
    // Unlabelled gauges read from the sources at scrape time (nothing is set before observe()).
    const stateGauge = (name: string, help: string, read: (s: MetricSources) => number | Promise<number>) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          const s = sources();
          if (s) this.set(await read(s));
        },
      });
    stateGauge('portcullis_grants_active', 'Access grants in force', (s) => s.activeGrants());
    stateGauge('portcullis_audit_queue_events', 'Audit events appended and waiting for the writer', (s) => s.auditBacklog().queued);
    stateGauge('portcullis_audit_batches_in_flight', 'Audit batches being written', (s) => s.auditBacklog().batchesInFlight);
    new Gauge({
      name: 'portcullis_audit_checkpoint_age_seconds',
      help: 'Seconds since this replica signed the last checkpoint of each stream (only on the signing replica)',
      labelNames: ['stream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [stream, age] of Object.entries(sources()?.checkpointAges() ?? {})) this.set({ stream }, age);
      },
    });
  }

  /** Installs what the state gauges read at scrape time. */
  observe(sources: MetricSources): void {
    this.#sources = sources;
  }
}
