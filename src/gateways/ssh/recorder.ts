// Records one SSH gateway session into the `session` audit stream: numbered records (payload.n,
// no gaps) appended in order, terminal output as asciicast v2 events batched into `ssh.output`
// chunks (output always, input only when opted in, resize events), and the closing `session.end`.
import { StringDecoder } from 'node:string_decoder';

/** Records appended through the host, in order; the host's append resolves once durable. */
export type Append = (type: string, payload: Record<string, unknown>) => Promise<void>;

/** One asciicast v2 event: [seconds since the channel started, "o" | "i" | "r", data]. */
export type CastEvent = [number, 'o' | 'i' | 'r', string];

const CHUNK_BYTES = 32 * 1024;
const CHUNK_MS = 200;

export class SessionRecorder {
  readonly session: string;
  #append: Append;
  #n = 0;
  #tail: Promise<void> = Promise.resolve();
  #failed: Error | undefined;
  #onFailure: (e: Error) => void;

  constructor(session: string, append: Append, onFailure: (e: Error) => void) {
    this.session = session;
    this.#append = append;
    this.#onFailure = onFailure;
  }

  /** Appends a record after every earlier one; resolves once it is durable. A failure ends the session (fail closed). */
  record(type: string, payload: Record<string, unknown>): Promise<void> {
    const n = ++this.#n;
    const full = { ...payload, session: this.session, n };
    const p = this.#tail.then(() => {
      if (this.#failed) throw this.#failed;
      return this.#append(type, full);
    });
    this.#tail = p.catch((e: Error) => {
      if (!this.#failed) {
        this.#failed = e;
        this.#onFailure(e);
      }
    });
    return p;
  }

  get count(): number {
    return this.#n;
  }

  /** Waits for every record so far. */
  flushed(): Promise<void> {
    return this.#tail;
  }
}

/** One interactive channel's terminal stream as asciicast v2, flushed in chunks. */
export class CastRecorder {
  readonly #rec: SessionRecorder;
  readonly #channel: number;
  readonly #start: number;
  readonly #input: boolean;
  readonly #out = new StringDecoder('utf8');
  readonly #in = new StringDecoder('utf8');
  #events: CastEvent[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #chunk = 0;

  constructor(rec: SessionRecorder, channel: number, opts: { recordInput: boolean; start: number }) {
    this.#rec = rec;
    this.#channel = channel;
    this.#input = opts.recordInput;
    this.#start = opts.start;
  }

  /** The asciicast v2 header (goes into the channel's `ssh.channel` record). */
  static header(cols: number, rows: number, term: string, startMs: number): Record<string, unknown> {
    return { version: 2, width: cols, height: rows, timestamp: Math.floor(startMs / 1000), env: { TERM: term } };
  }

  #t(): number {
    return Math.round((performance.now() - this.#start) * 1000) / 1e6;
  }

  #push(e: CastEvent, size: number): void {
    if (e[2] === '') return;
    this.#events.push(e);
    this.#bytes += size;
    if (this.#bytes >= CHUNK_BYTES) void this.flush().catch(() => {});
    else this.#timer ??= setTimeout(() => void this.flush().catch(() => {}), CHUNK_MS);
  }

  output(d: Buffer): void {
    this.#push([this.#t(), 'o', this.#out.write(d)], d.length);
  }

  input(d: Buffer): void {
    if (this.#input) this.#push([this.#t(), 'i', this.#in.write(d)], d.length);
  }

  resize(cols: number, rows: number): void {
    this.#push([this.#t(), 'r', `${cols}x${rows}`], 8);
  }

  /** Appends the events so far as one `ssh.output` record. */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#events.length === 0) return Promise.resolve();
    const events = this.#events;
    this.#events = [];
    this.#bytes = 0;
    return this.#rec.record('ssh.output', { channel: this.#channel, chunk: ++this.#chunk, events });
  }

  /** Flushes the decoders' partial characters and the last events. */
  end(): Promise<void> {
    const o = this.#out.end();
    if (o) this.#events.push([this.#t(), 'o', o]);
    const i = this.#in.end();
    if (i && this.#input) this.#events.push([this.#t(), 'i', i]);
    return this.flush();
  }
}

/** Rebuilds the asciicast v2 text of one channel from its records (for `sessions play` and the API). */
export function asciicast(records: { type: string; payload: Record<string, unknown> }[], channel?: number): string {
  const start = records.find((r) => r.type === 'ssh.channel' && r.payload.cast !== undefined && (channel === undefined || r.payload.channel === channel));
  if (!start) throw new Error('no interactive channel recorded in this session');
  const ch = start.payload.channel;
  const lines = [JSON.stringify(start.payload.cast)];
  for (const r of records) {
    if (r.type !== 'ssh.output' || r.payload.channel !== ch) continue;
    for (const e of r.payload.events as CastEvent[]) lines.push(JSON.stringify(e));
  }
  return `${lines.join('\n')}\n`;
}
