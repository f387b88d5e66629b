// The decision engine interface. Two engines implement it: `wasm` (calls @cedar-policy/cedar-wasm)
// and `compiled` (Cedar compiled to JavaScript closures). Both must give identical answers.
// Values use Cedar's JSON entity format so either engine can take them as they are.

export type CedarValue =
  | boolean
  | number
  | bigint // Long values beyond 2^53 when read with full precision
  | string
  | CedarValue[]
  | { __entity: EntityUid }
  | { __extn: { fn: string; arg: CedarValue } }
  | { [key: string]: CedarValue };

export interface EntityUid {
  type: string;
  id: string;
}

export interface Entity {
  uid: EntityUid;
  attrs: Record<string, CedarValue>;
  parents: EntityUid[];
  tags?: Record<string, CedarValue>;
}

export interface PolicySource {
  /** Stable id reported in decisions (e.g. `demo.cedar#2` or an `@id("…")` annotation). */
  id: string;
  /** The text of exactly one static policy. */
  text: string;
}

export interface AuthzRequest {
  principal: EntityUid;
  action: EntityUid;
  resource: EntityUid;
  context: Record<string, CedarValue>;
}

export interface PolicyError {
  policyId: string;
  message: string;
}

export interface AuthzResult {
  decision: 'allow' | 'deny';
  /** Determining policies: satisfied permits on allow, satisfied forbids on deny. */
  reasons: string[];
  /** Policies skipped because their evaluation errored. */
  errors: PolicyError[];
}

export type EngineKind = 'wasm' | 'compiled';

export interface DecisionEngine {
  readonly kind: EngineKind;
  /** Activates a set of already-validated policies, replacing the previous set. */
  loadPolicies(policies: readonly PolicySource[]): void;
  /** Adds or replaces entities in the engine's long-lived entity store. */
  upsertEntities(entities: readonly Entity[]): void;
  removeEntities(uids: readonly EntityUid[]): void;
  /**
   * Decides one request. `requestEntities` (e.g. the principal with its session attributes)
   * are merged over the store for this call only.
   */
  authorize(request: AuthzRequest, requestEntities?: readonly Entity[]): AuthzResult;
}
