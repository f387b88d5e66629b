// Witnesses: every signed checkpoint is published outside the store as it is made, so an attacker
// who can write the store (but not the witness) can no longer truncate or re-chain a stream's
// tail, or delete a whole stream, without `verify` noticing. Each witnessed line is the signed
// checkpoint itself (stream, seq, hash, time, prev_seq, kid, sig): it proves itself, so a
// tampered witness fails its own signature check. See docs/audit.md (Witness, trust model).
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { canonicalJson } from './canonical.ts';
import { CheckpointVerifier, type CheckpointRow } from './checkpoint.ts';
import { AUDIT_STREAMS, type AuditStreamName, type PublicKeyResolver } from './types.ts';

export interface WitnessOptions {
  /** Append-only JSON-lines file (O_APPEND, fsync after each write), ideally on another volume. */
  file?: string;
  /** HTTP sink: each checkpoint is POSTed as JSON, retried, never awaited by decisions. */
  url?: string;
  /** Called on a failed publication (no secret in it: checkpoints are public). */
  onError?: (where: 'file' | 'url', err: unknown) => void;
  /** First retry delay of the HTTP sink, doubled per attempt (default 500 ms, 5 retries). */
  retryDelayMs?: number;
  /** How the HTTP sink is reached: the broker passes its outbound policy (no private destinations). */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
}

/** One witnessed line: exactly the signed checkpoint row. */
function witnessLine(c: CheckpointRow): string {
  return canonicalJson({ stream: c.stream, seq: c.seq, hash: c.hash, time: c.time, prev_seq: c.prev_seq, kid: c.kid, sig: c.sig }) + '\n';
}

/**
 * Appends checkpoints to the witness file. Writes are queued and coalesced (one write + one
 * fdatasync per group) on the thread pool, so the event loop never waits for the disk and a
 * decision never waits for the witness; `flush()` waits for what was published so far.
 */
class FileWitness {
  readonly #path: string;
  readonly #onError: WitnessOptions['onError'];
  #handle: Promise<FileHandle> | undefined;
  #pending: string[] = [];
  #running: Promise<void> | undefined;
  #closed = false;
  /** Checkpoints that could not be written (they are retried with the next write). */
  failures = 0;

  constructor(path: string, onError?: WitnessOptions['onError']) {
    this.#path = path;
    this.#onError = onError;
  }

  get path(): string {
    return this.#path;
  }

  publish(c: CheckpointRow): void {
    if (this.#closed) return;
    this.#pending.push(witnessLine(c));
    this.#running ??= this.#drain();
  }

  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    const h = this.#handle;
    this.#handle = undefined;
    if (h) await h.then((fh) => fh.close(), () => undefined);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const lines = this.#pending;
        this.#pending = [];
        try {
          // 'a': O_APPEND|O_CREAT, so every write lands at the end whatever else writes the file.
          this.#handle ??= open(this.#path, 'a', 0o640);
          const fh = await this.#handle;
          await fh.appendFile(lines.join(''));
          await fh.datasync();
        } catch (err) {
          this.failures += lines.length;
          this.#handle = undefined;
          this.#onError?.('file', err);
          // Keep them for the next publication rather than spin on a broken volume.
          this.#pending = lines.concat(this.#pending);
          return;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}

/**
 * POSTs checkpoints to an HTTP sink, in order, with retries (exponential backoff, bounded queue:
 * the oldest are dropped and counted beyond `maxQueue`). Nothing waits for it but `settled()`.
 * NOTE: outbound destinations must go through the outbound-address guard (issue #8 item 26).
 */
class UrlWitness {
  readonly #url: string;
  readonly #onError: WitnessOptions['onError'];
  readonly #queue: string[] = [];
  readonly #maxQueue: number;
  readonly #retries: number;
  readonly #baseDelayMs: number;
  readonly #fetch: NonNullable<WitnessOptions['fetch']>;
  #running: Promise<void> | undefined;
  #closed = false;
  /** After close(): retries go on (with backoff) only until this time, then what is left is given up. */
  #giveUpAt = Infinity;
  dropped = 0;
  failures = 0;

  constructor(url: string, o: { onError?: WitnessOptions['onError']; maxQueue?: number; retries?: number; baseDelayMs?: number; fetch?: WitnessOptions['fetch'] } = {}) {
    this.#url = url;
    this.#fetch = o.fetch ?? fetch;
    this.#onError = o.onError;
    this.#maxQueue = o.maxQueue ?? 10_000;
    this.#retries = o.retries ?? 5;
    this.#baseDelayMs = o.baseDelayMs ?? 500;
  }

  publish(c: CheckpointRow): void {
    if (this.#closed) return;
    this.#queue.push(witnessLine(c).trimEnd());
    while (this.#queue.length > this.#maxQueue) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#running ??= this.#drain();
  }

  /** Resolves when everything queued so far was delivered or given up. */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Takes nothing new; keeps delivering (and retrying) what is queued for a few seconds at most, so
   * a sink that blips during shutdown still gets the last checkpoints and a dead one never holds up
   * shutdown.
   */
  async close(budgetMs = 6_000): Promise<void> {
    this.#closed = true;
    this.#giveUpAt = Date.now() + budgetMs;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.settled(), new Promise((r) => (timer = setTimeout(r, budgetMs)))]);
    clearTimeout(timer);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        if (Date.now() >= this.#giveUpAt) {
          this.failures += this.#queue.length; // closed and out of time: given up, counted
          this.#queue.length = 0;
          break;
        }
        const body = this.#queue[0]!;
        let delivered = false;
        for (let attempt = 0; attempt <= this.#retries && !delivered; attempt++) {
          if (attempt > 0) {
            const delay = this.#baseDelayMs * 2 ** (attempt - 1);
            if (Date.now() + delay >= this.#giveUpAt) break; // closing and out of time
            await new Promise((r) => setTimeout(r, delay).unref());
          }
          try {
            const res = await this.#fetch(this.#url, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body,
              redirect: 'error',
              signal: AbortSignal.timeout(5_000),
            });
            await res.body?.cancel();
            if (res.ok) delivered = true;
            else throw new Error(`witness answered ${res.status}`);
          } catch (err) {
            this.#onError?.('url', err);
          }
        }
        if (!delivered) this.failures++;
        if (this.#queue[0] === body) this.#queue.shift();
      }
    } finally {
      this.#running = undefined;
    }
  }
}

/** What the log publishes to: any of file and url. */
export class Witnesses {
  readonly file: FileWitness | undefined;
  readonly url: UrlWitness | undefined;
  constructor(o: WitnessOptions) {
    this.file = o.file !== undefined ? new FileWitness(o.file, o.onError) : undefined;
    this.url = o.url !== undefined ? new UrlWitness(o.url, { onError: o.onError, ...(o.fetch && { fetch: o.fetch }), ...(o.retryDelayMs !== undefined && { baseDelayMs: o.retryDelayMs }) }) : undefined;
  }
  publish(c: CheckpointRow): void {
    this.file?.publish(c);
    this.url?.publish(c);
  }
  /** The file only: the HTTP sink is never waited for. */
  flush(): Promise<void> {
    return this.file?.flush() ?? Promise.resolve();
  }
  async close(): Promise<void> {
    await Promise.all([this.file?.close(), this.url?.close()]);
  }
}

/** The witnessed checkpoints of each stream (valid signatures only), and what is wrong with the witness. */
export interface WitnessedCheckpoints {
  source: string;
  /** Per stream, ascending by seq (duplicates kept: two different hashes for one seq fail verification). */
  byStream: Map<AuditStreamName, CheckpointRow[]>;
  /** Lines read. */
  lines: number;
  /** Problems with the witness itself (malformed line, bad or unknown signature). */
  problems: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Parses witness text and checks each line's signature; never throws on bad content. */
export function parseWitness(text: string, source: string, keys: PublicKeyResolver): WitnessedCheckpoints {
  const verifier = new CheckpointVerifier(keys);
  const out: WitnessedCheckpoints = { source, byStream: new Map(), lines: 0, problems: [] };
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => {
    out.lines++;
    const at = `witness line ${i + 1}`;
    let c: CheckpointRow;
    try {
      c = JSON.parse(line) as CheckpointRow;
    } catch {
      out.problems.push(`${at} is not JSON`);
      return;
    }
    if (
      typeof c !== 'object' || c === null ||
      !AUDIT_STREAMS.includes(c.stream as AuditStreamName) ||
      !Number.isSafeInteger(c.seq) || c.seq < 1 ||
      !Number.isSafeInteger(c.prev_seq) || c.prev_seq < 0 || c.prev_seq >= c.seq ||
      typeof c.hash !== 'string' || !HEX64.test(c.hash) ||
      typeof c.time !== 'string' || typeof c.kid !== 'string' || typeof c.sig !== 'string'
    ) {
      out.problems.push(`${at} is not a checkpoint`);
      return;
    }
    const bad = verifier.check(c);
    if (bad) {
      out.problems.push(`${at}: ${bad} (the witness was tampered with, or the key is not known)`);
      return;
    }
    const stream = c.stream as AuditStreamName;
    const row: CheckpointRow = { stream, seq: c.seq, hash: c.hash, time: c.time, prev_seq: c.prev_seq, kid: c.kid, sig: c.sig };
    const list = out.byStream.get(stream);
    if (list) list.push(row);
    else out.byStream.set(stream, [row]);
  });
  for (const list of out.byStream.values()) list.sort((a, b) => a.seq - b.seq);
  return out;
}

/** Reads a witness file. A missing or unreadable file is a problem, not an empty witness. */
export async function readWitnessFile(path: string, keys: PublicKeyResolver): Promise<WitnessedCheckpoints> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { source: path, byStream: new Map(), lines: 0, problems: [`witness file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseWitness(text, path, keys);
}
