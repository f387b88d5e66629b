// The audit domain's tables. Events are one table keyed by (stream, seq); each stream has a head
// row written in the same transaction as its events, so deleting the last rows is detectable.
import { migrate, type Db, type Migration } from '../store/sqlite.ts';

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
];

export function migrateAudit(db: Db): void {
  migrate(db, 'audit', AUDIT_MIGRATIONS);
}
