// The lifecycle's storage ports (implemented for SQLite and PostgreSQL in src/store/): flags raised
// on identities (owner offboarded, stale warning), each open until cleared.

export type FlagCode = 'owner.offboarded' | 'stale.warning';

export interface IdentityFlag {
  identity_id: string;
  code: FlagCode;
  /** Non-secret details: the offboarded owner, the successor, the last use seen… */
  detail: Record<string, unknown>;
  raised_at: string;
  cleared_at: string | null;
  /** What ended it: `reassigned`, `suspended`, `offboarded`, `used again`, … */
  resolution: string | null;
}

export interface FlagRepository {
  /** Raises a flag unless one of the same code is open on the identity; false then. */
  raise(f: { identity_id: string; code: FlagCode; detail: Record<string, unknown>; at: number }): Promise<boolean>;
  /** Clears the open flag; false when none was open. */
  clear(identityId: string, code: FlagCode, c: { at: number; resolution: string }): Promise<boolean>;
  /** Open flags (of one code), oldest first. */
  open(code?: FlagCode): Promise<IdentityFlag[]>;
  /** Every flag of an identity, newest first. */
  of(identityId: string): Promise<IdentityFlag[]>;
}
