// The audit domain's tables (audit.db). Events are one table keyed by (stream, seq); each stream
// has a head row written in the same transaction as its events, so deleting the last rows is detectable.
import { migrate, type Db, type Migration } from '../db.ts';

export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up: `
      CREATE TABLE audit_events (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        time TEXT NOT NULL,
        type TEXT NOT NULL,
        actor TEXT NOT NULL,
        boundary TEXT,
        subject TEXT,
        decision TEXT,
        payload TEXT NOT NULL,     -- canonical JSON, hashed byte for byte
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (stream, seq)
      ) WITHOUT ROWID;
      CREATE INDEX audit_events_time ON audit_events (stream, time);
      CREATE INDEX audit_events_actor ON audit_events (actor, stream, seq);
      CREATE INDEX audit_events_subject ON audit_events (subject, stream, seq) WHERE subject IS NOT NULL;
      CREATE TABLE audit_heads (
        stream TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        cp_seq INTEGER NOT NULL,   -- last checkpointed seq (0: none)
        cp_time INTEGER NOT NULL   -- ms of the last checkpoint, or of the first event
      );
      CREATE TABLE audit_checkpoints (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        time TEXT NOT NULL,
        prev_seq INTEGER NOT NULL, -- seq of the previous checkpoint, signed: deleting one shows
        kid TEXT NOT NULL,
        sig TEXT NOT NULL,         -- base64url Ed25519 signature
        PRIMARY KEY (stream, seq)
      ) WITHOUT ROWID;
    `,
  },
  {
    // Times become non-decreasing within a stream (the writer clamps to the head's last_time), so
    // a time range is answered as a seq range by binary search on the primary key and the
    // (stream, time) index, a third of the insert cost, goes. Rows written before this version
    // may go back in time: sorted_from is the first seq from which the stream is in time order,
    // and queries filter the rows before it by time (existing records are never rewritten).
    version: 2,
    up: `
      ALTER TABLE audit_heads ADD COLUMN last_time TEXT NOT NULL DEFAULT '';
      ALTER TABLE audit_heads ADD COLUMN sorted_from INTEGER NOT NULL DEFAULT 1;
      UPDATE audit_heads SET
        last_time = COALESCE((SELECT e.time FROM audit_events e WHERE e.stream = audit_heads.stream AND e.seq = audit_heads.seq), ''),
        sorted_from = COALESCE((
          SELECT MAX(seq) FROM (
            SELECT seq, time < LAG(time) OVER (ORDER BY seq) AS back FROM audit_events e WHERE e.stream = audit_heads.stream
          ) WHERE back
        ), 1);
      DROP INDEX IF EXISTS audit_events_time;
    `,
  },
  {
    // One gateway session's records (sessions show / verify / recording) by its id, not by a scan
    // of the session stream: a partial index on payload.session of that stream only, so appends
    // to the other streams pay nothing for it.
    version: 3,
    up: `CREATE INDEX audit_events_session ON audit_events (json_extract(payload, '$.session'), seq) WHERE stream = 'session';`,
  },
];

export function migrateAudit(db: Db): void {
  migrate(db, 'audit', AUDIT_MIGRATIONS);
}
