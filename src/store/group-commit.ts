// Group commit for either store: collects the writes of one event-loop turn into a batch and hands batches to the store's commit, a bounded number at a time.

/** A write waiting for its batch's commit, and how to answer its caller. */
export interface Pending<W, R> {
  write: W;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Collects writes and hands them on together: the writes of one turn of the event loop, and those
 * that arrive while `maxInFlight` batches are being committed, form the next batch. How a batch is
 * committed (one transaction; what a failed write undoes) is the store's: `commit`.
 */
export abstract class GroupCommit<W, R> {
  readonly #maxInFlight: number;
  #queue: Pending<W, R>[] = [];
  #scheduled = false;
  #inFlight = 0;
  readonly #idle = new Set<() => void>();

  constructor(maxInFlight: number) {
    this.#maxInFlight = maxInFlight;
  }

  write(write: W): Promise<R> {
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    this.#queue.push({ write, resolve, reject });
    this.#schedule();
    return promise;
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return; // a finishing batch reschedules
    this.#scheduled = true;
    // setImmediate, not a microtask: every write made during this turn joins the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  #send(): void {
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#inFlight++;
    void this.commit(batch).finally(() => {
      this.#inFlight--;
      if (this.#queue.length > 0) this.#schedule();
      else if (this.#inFlight === 0) for (const f of this.#idle) f();
    });
  }

  /** Commits the batch and answers every one of its writes (resolve or reject); never rejects. */
  protected abstract commit(batch: Pending<W, R>[]): Promise<void>;

  /** Resolves once no batch is in flight or queued. */
  drain(): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => {
      const done = () => {
        this.#idle.delete(done);
        r();
      };
      this.#idle.add(done);
    });
  }
}
