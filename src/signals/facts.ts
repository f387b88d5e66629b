// The context facts CAEP events set, as policy sees them (`context.signals`): kept in the store
// (shared by replicas) and in memory for the decision path, refreshed on other replicas' notices.
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import type { SignalFact, SignalFactRepository } from './ports.ts';

/**
 * `context.signals` of every decision. Absence is explicit, never a missing attribute: a policy
 * that reads an unset fact sees `"unknown"` / `false` / `0` (a missing attribute would make a
 * forbid error, and Cedar skips a policy that errors).
 */
export type SignalContext = {
  /** The latest CAEP `assurance-level-change` `current_level`, or `"unknown"`. */
  assurance_level: string;
  /** `event_timestamp` of that event (seconds), 0 when none. */
  assurance_level_at: number;
  /** `compliant`, `not-compliant`, or `"unknown"` (no `device-compliance-change` received). */
  device_compliance: string;
  /** True only when the latest `device-compliance-change` said compliant. */
  device_compliant: boolean;
  device_compliance_at: number;
};

export const UNKNOWN_SIGNALS: Readonly<SignalContext> = Object.freeze({
  assurance_level: 'unknown',
  assurance_level_at: 0,
  device_compliance: 'unknown',
  device_compliant: false,
  device_compliance_at: 0,
});

export class SignalFacts {
  readonly #repository: SignalFactRepository;
  readonly #changes: ChangeFeed | undefined;
  readonly #uow: UnitOfWork | undefined;
  readonly #byIdentity = new Map<string, SignalContext>();

  constructor(o: { repository: SignalFactRepository; changes?: ChangeFeed; unitOfWork?: UnitOfWork }) {
    this.#repository = o.repository;
    this.#changes = o.changes;
    this.#uow = o.unitOfWork;
    o.changes?.subscribe('signal', (id) => this.#reload(id));
    o.changes?.onResync(() => this.load());
  }

  /** Reads every stored fact into memory (at open, and after notices may have been missed). */
  async load(): Promise<void> {
    const all = await this.#repository.list();
    this.#byIdentity.clear();
    for (const f of all) this.#apply(f);
  }

  async #reload(identityId: string): Promise<void> {
    const facts = await this.#repository.list(identityId);
    this.#byIdentity.delete(identityId);
    for (const f of facts) this.#apply(f);
  }

  #apply(f: SignalFact): void {
    const cur = { ...(this.#byIdentity.get(f.identityId) ?? UNKNOWN_SIGNALS) };
    if (f.kind === 'assurance_level') {
      if (f.eventAt < cur.assurance_level_at) return;
      cur.assurance_level = f.value;
      cur.assurance_level_at = f.eventAt;
    } else {
      if (f.eventAt < cur.device_compliance_at) return;
      cur.device_compliance = f.value;
      cur.device_compliant = f.value === 'compliant';
      cur.device_compliance_at = f.eventAt;
    }
    this.#byIdentity.set(f.identityId, cur);
  }

  /** `context.signals` of an identity (the explicit unknowns when nothing was received). */
  of(identityId: string): SignalContext {
    return this.#byIdentity.get(identityId) ?? UNKNOWN_SIGNALS;
  }

  /** Stores a fact (an older event than the one kept changes nothing) and tells the other replicas. True if it was newer. */
  async record(fact: SignalFact): Promise<boolean> {
    const write = async () => {
      const kept = await this.#repository.put(fact);
      if (kept) await this.#changes?.publish('signal', fact.identityId);
      return kept;
    };
    const kept = this.#uow ? await this.#uow.transaction(write) : await write();
    if (kept) this.#apply(fact);
    return kept;
  }
}
