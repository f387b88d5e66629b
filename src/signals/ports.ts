// The signals domain's storage ports: the context facts received CAEP events set (assurance level,
// device compliance), kept per identity with the event time. Implemented in src/store/ for both
// stores. Seen SET ids use the identity domain's ReplayRepository (identity/replay.ts).

/** Which fact an event sets. */
export type SignalFactKind = 'assurance_level' | 'device_compliance';

/** The latest value of one fact of one identity, as a transmitter reported it. */
export interface SignalFact {
  identityId: string;
  kind: SignalFactKind;
  /** `assurance_level`: the event's `current_level`; `device_compliance`: `compliant` | `not-compliant`. */
  value: string;
  /** `event_timestamp` of the event (or its SET's `iat`), seconds since the epoch. */
  eventAt: number;
  /** The transmitter that reported it. */
  transmitter: string;
}

export interface SignalFactRepository {
  /**
   * Keeps `fact` unless the stored fact of the same identity and kind has a later event time
   * (events may arrive out of order, on several replicas at once): one atomic step. True if kept.
   */
  put(fact: SignalFact): Promise<boolean>;
  /** The facts of one identity, or of every identity when left out. */
  list(identityId?: string): Promise<SignalFact[]>;
}

export interface SignalStore {
  readonly facts: SignalFactRepository;
}
