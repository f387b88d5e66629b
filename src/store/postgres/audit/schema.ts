// The audit domain's tables on PostgreSQL: the same events, heads and checkpoints as SQLite's
// audit.db (src/store/sqlite/audit/schema.ts), shared by every replica, plus the binary search
// that turns a time range into a seq range server-side.
import { GENESIS } from '../../../audit/chain.ts';
import { AUDIT_STREAMS, type AuditStreamName } from '../../../audit/types.ts';
import type { PgDomainMigrations } from '../db.ts';

// A head row per stream exists from the start (seq 0: the stream is empty), so the first append
// of two replicas locks it like any other instead of racing to create it. Version 1 made the
// first three streams' rows; each stream added later gets its row in its own migration.
const headRow = (s: AuditStreamName) => `('${s}', 0, '${GENESIS[s]}', '', 0, 0, 1)`;
const heads = (['authn', 'authz', 'admin'] as const).map(headRow).join(', ');
const later = AUDIT_STREAMS.filter((s) => !['authn', 'authz', 'admin'].includes(s));

export const MIGRATIONS: PgDomainMigrations = {
  domain: 'audit',
  migrations: [
    {
      version: 1,
      up: `
        -- time and stream compare byte for byte (COLLATE "C"), as on SQLite: ISO-8601 UTC strings of
        -- one format then order as their instants, whatever the database's locale.
        CREATE TABLE audit_events (
          stream TEXT COLLATE "C" NOT NULL,
          seq BIGINT NOT NULL,
          time TEXT COLLATE "C" NOT NULL,
          type TEXT NOT NULL,
          actor TEXT NOT NULL,
          boundary TEXT,
          subject TEXT,
          decision TEXT,
          payload TEXT NOT NULL,     -- canonical JSON, hashed byte for byte (never JSONB: it would reformat)
          prev_hash TEXT NOT NULL,
          hash TEXT NOT NULL,
          PRIMARY KEY (stream, seq)
        );
        CREATE INDEX audit_events_actor ON audit_events (actor, stream, seq);
        CREATE INDEX audit_events_subject ON audit_events (subject, stream, seq) WHERE subject IS NOT NULL;
        CREATE TABLE audit_heads (
          stream TEXT COLLATE "C" PRIMARY KEY,
          seq BIGINT NOT NULL,         -- 0: no event yet
          hash TEXT NOT NULL,
          last_time TEXT COLLATE "C" NOT NULL,
          cp_seq BIGINT NOT NULL,      -- last seq a checkpoint was requested for (0: none)
          cp_time BIGINT NOT NULL,     -- ms of that request, or of the first event
          sorted_from BIGINT NOT NULL  -- first seq from which times never go back (rows copied from an old SQLite store may)
        );
        INSERT INTO audit_heads (stream, seq, hash, last_time, cp_seq, cp_time, sorted_from) VALUES ${heads};
        CREATE TABLE audit_checkpoints (
          stream TEXT COLLATE "C" NOT NULL,
          seq BIGINT NOT NULL,
          hash TEXT NOT NULL,
          time TEXT NOT NULL,
          prev_seq BIGINT NOT NULL,    -- seq of the previous checkpoint, signed: deleting one shows
          kid TEXT NOT NULL,
          sig TEXT NOT NULL,           -- base64url Ed25519 signature
          PRIMARY KEY (stream, seq)
        );
        -- The smallest seq in [lo, hi] from which every row has time >= t (hi when none): a binary
        -- search on the primary key, valid because times do not decrease from lo on. The first
        -- row at or after a seq is probed, so rows missing from the chain cannot derail it.
        CREATE FUNCTION audit_first_at_or_after(p_stream TEXT, p_lo BIGINT, p_hi BIGINT, p_t TEXT) RETURNS BIGINT
        LANGUAGE plpgsql STABLE AS $fn$
        DECLARE
          mid BIGINT;
          t TEXT;
        BEGIN
          WHILE p_lo < p_hi LOOP
            mid := p_lo + (p_hi - p_lo) / 2;
            SELECT e.time INTO t FROM audit_events e WHERE e.stream = p_stream AND e.seq >= mid ORDER BY e.seq LIMIT 1;
            IF t IS NULL OR t >= (p_t COLLATE "C") THEN p_hi := mid; ELSE p_lo := mid + 1; END IF;
          END LOOP;
          RETURN p_lo;
        END
        $fn$;
      `,
    },
    {
      // The gateways' session stream (issue #11): its placeholder head, like the others'.
      version: 2,
      up: `INSERT INTO audit_heads (stream, seq, hash, last_time, cp_seq, cp_time, sorted_from) VALUES ${later.map(headRow).join(', ')} ON CONFLICT (stream) DO NOTHING;`,
    },
    {
      // One gateway session's records (sessions show / verify / recording) by its id, not by a
      // scan of the session stream: a partial index on payload.session of that stream only, so
      // appends to the other streams pay nothing for it.
      version: 3,
      up: `CREATE INDEX audit_events_session ON audit_events (((payload::jsonb) ->> 'session'), seq) WHERE stream = 'session';`,
    },
  ],
};
