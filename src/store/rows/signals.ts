// Rows of the signals domain's table, as both stores read them (same columns on SQLite and PostgreSQL).
import type { SignalFact, SignalFactKind } from '../../signals/ports.ts';

export interface FactRow {
  identity_id: string;
  kind: string;
  value: string;
  event_at: number | bigint | string;
  transmitter: string;
}

export function factFromRow(r: FactRow): SignalFact {
  return { identityId: r.identity_id, kind: r.kind as SignalFactKind, value: r.value, eventAt: Number(r.event_at), transmitter: r.transmitter };
}
