// `replay: reject`: token ids a trust has accepted, kept until the token expires so a restart does
// not forget them. Ids are stored hashed with their trust (bounded size, no token material at
// rest); expired entries are pruned as new ones arrive.
import { createHash } from 'node:crypto';
import type { ReplayRepository } from './ports.ts';
import { fail } from './reasons.ts';
import type { ReplayGuard } from './jwt.ts';

/** How often (seconds of token time) expired entries are swept. */
const PRUNE_EVERY_SECONDS = 60;

export class JtiReplayStore implements ReplayGuard {
  readonly #repository: ReplayRepository;
  #prunedAt = -Infinity;

  /** Over `store.identity.replay`. */
  constructor(repository: ReplayRepository) {
    this.#repository = repository;
  }

  async remember(scope: string, jti: string, expiresAt: number, now: number): Promise<void> {
    const id = createHash('sha256').update(scope).update('\0').update(jti).digest('hex');
    if (now - this.#prunedAt >= PRUNE_EVERY_SECONDS) await this.prune(now);
    // Insert-if-not-seen in one step of the store: two logins with one token at once (in one
    // process or on two replicas) cannot both be told the id was fresh.
    const fresh = await this.#repository.remember(id, Math.ceil(expiresAt), now);
    if (!fresh) throw fail('replayed', 'this token was already used (jti seen before; the trust rejects replays)');
  }

  /** Drops entries of tokens that have expired; returns how many. */
  prune(now: number): Promise<number> {
    this.#prunedAt = now;
    return this.#repository.prune(now);
  }

  /** Entries kept (for tests and metrics). */
  size(): Promise<number> {
    return this.#repository.count();
  }
}
