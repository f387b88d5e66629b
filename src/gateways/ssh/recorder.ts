// Terminal streams of SSH gateway channels as asciicast v2 events, batched into `ssh.output` records
// of the session stream (output always, input only when opted in, resize events), and back.
import { StringDecoder } from 'node:string_decoder';

/** One asciicast v2 event: [seconds since the channel started, "o" | "i" | "r", data]. */
export type CastEvent = [number, 'o' | 'i' | 'r', string];

/** The part of the core's SessionRecorder (sessions.ts) a cast needs. */
export interface Records {
  record(type: string, payload: Record<string, unknown>): Promise<unknown>;
}

const CHUNK_BYTES = 32 * 1024;
const CHUNK_MS = 200;

/** One interactive channel's terminal stream as asciicast v2, flushed in chunks. */
export class CastRecorder {
  readonly #rec: Records;
  readonly #channel: number;
  readonly #start: number;
  readonly #input: boolean;
  readonly #out = new StringDecoder('utf8');
  readonly #in = new StringDecoder('utf8');
  #events: CastEvent[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #chunk = 0;

  constructor(rec: Records, channel: number, opts: { recordInput: boolean; start: number }) {
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
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#events.length === 0) return;
    const events = this.#events;
    this.#events = [];
    this.#bytes = 0;
    await this.#rec.record('ssh.output', { channel: this.#channel, chunk: ++this.#chunk, events });
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
