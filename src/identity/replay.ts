// `replay: reject`: token ids a trust has accepted, kept until the token expires so a restart does
// not forget them. Ids are stored hashed with their trust (bounded size, no token material at
// rest); expired entries are pruned as new ones arrive.
import { createHash } from 'node:crypto';
import type { Db } from '../store/sqlite/db.ts';
import { migrate, transaction } from '../store/sqlite/db.ts';
import { fail } from './reasons.ts';
import type { ReplayGuard } from './jwt.ts';

// Its own migration domain, so it never collides with the identity domain's version numbers.
export const REPLAY_MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE identity_seen_jti (
           id TEXT PRIMARY KEY,
           expires_at INTEGER NOT NULL);
         CREATE INDEX identity_seen_jti_exp ON identity_seen_jti (expires_at);`,
  },
] as const;

/** How often (seconds of token time) expired entries are swept. */
const PRUNE_EVERY_SECONDS = 60;

export class JtiReplayStore implements ReplayGuard {
  readonly #db: Db;
  #prunedAt = -Infinity;

  static open(db: Db): JtiReplayStore {
    migrate(db, 'identity-replay', REPLAY_MIGRATIONS);
    return new JtiReplayStore(db);
  }

  private constructor(db: Db) {
    this.#db = db;
  }

  remember(scope: string, jti: string, expiresAt: number, now: number): void {
    const id = createHash('sha256').update(scope).update('\0').update(jti).digest('hex');
    const fresh = transaction(this.#db, () => {
      if (now - this.#prunedAt >= PRUNE_EVERY_SECONDS) {
        this.prune(now);
      } else {
        this.#db.prepare('DELETE FROM identity_seen_jti WHERE id = ? AND expires_at < ?').run(id, now);
      }
      return this.#db.prepare('INSERT INTO identity_seen_jti (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING').run(id, Math.ceil(expiresAt)).changes > 0;
    });
    if (!fresh) throw fail('replayed', 'this token was already used (jti seen before; the trust rejects replays)');
  }

  /** Drops entries of tokens that have expired; returns how many. */
  prune(now: number): number {
    this.#prunedAt = now;
    return Number(this.#db.prepare('DELETE FROM identity_seen_jti WHERE expires_at < ?').run(now).changes);
  }

  /** Entries kept (for tests and metrics). */
  size(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM identity_seen_jti').get() as { n: number }).n;
  }
}
