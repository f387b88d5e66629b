// The PostgreSQL wire protocol (v3) as the gateway needs it: a bounded framer for both directions
// (every length checked before anything is buffered), readers for the few fields it looks into,
// and builders of the backend messages it writes itself. Everything read here is hostile input.

/** Codes of the special startup packets (length, then this code). */
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
export const PROTOCOL_3_0 = 196608;
/** PostgreSQL's own limit on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;

/** A framing violation: the connection is answered with a FATAL protocol error and closed. */
export class ProtocolViolation extends Error {
  readonly sqlstate: string;
  constructor(message: string, sqlstate = '08P01') {
    super(message);
    this.name = 'ProtocolViolation';
    this.sqlstate = sqlstate;
  }
}

/** One framed message: its type byte (0 for a startup packet) and its whole bytes (type and length included). */
export interface Frame {
  type: number;
  bytes: Buffer;
}

/**
 * Splits a byte stream into messages. `startup` frames have no type byte (length first);
 * typed frames have a type byte then a length that counts itself. A length below its minimum or
 * above `max` throws ProtocolViolation before anything more is buffered.
 */
export class Framer {
  #buf: Buffer = Buffer.alloc(0);
  startup: boolean;
  readonly #max: number;

  constructor(opts: { startup: boolean; maxMessage: number }) {
    this.startup = opts.startup;
    this.#max = opts.maxMessage;
  }

  /** Bytes received but not yet framed. */
  get pending(): number {
    return this.#buf.length;
  }

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  /** The next complete frame, or undefined when more bytes are needed. */
  next(): Frame | undefined {
    const b = this.#buf;
    if (this.startup) {
      if (b.length < 4) return undefined;
      const len = b.readUInt32BE(0);
      if (len < 8 || len > MAX_STARTUP_PACKET) throw new ProtocolViolation(`invalid startup packet length ${len}`);
      if (b.length < len) return undefined;
      this.#buf = b.subarray(len);
      return { type: 0, bytes: b.subarray(0, len) };
    }
    if (b.length < 5) return undefined;
    const len = b.readUInt32BE(1);
    if (len < 4 || len > this.#max) throw new ProtocolViolation(len < 4 ? `invalid message length ${len}` : `message of ${len} bytes exceeds the limit of ${this.#max}`, len < 4 ? '08P01' : '54000');
    if (b.length < len + 1) return undefined;
    this.#buf = b.subarray(len + 1);
    return { type: b[0]!, bytes: b.subarray(0, len + 1) };
  }

  /** Takes what is buffered (e.g. to refuse bytes sent after an SSLRequest before the handshake). */
  drain(): Buffer {
    const b = this.#buf;
    this.#buf = Buffer.alloc(0);
    return b;
  }
}

/** Reads the fields of one message body (after type and length), never past its end. */
export class Reader {
  readonly #b: Buffer;
  #o: number;

  constructor(b: Buffer, offset: number) {
    this.#b = b;
    this.#o = offset;
  }

  get done(): boolean {
    return this.#o >= this.#b.length;
  }

  get offset(): number {
    return this.#o;
  }

  int32(): number {
    if (this.#o + 4 > this.#b.length) throw new ProtocolViolation('message too short');
    const v = this.#b.readInt32BE(this.#o);
    this.#o += 4;
    return v;
  }

  int16(): number {
    if (this.#o + 2 > this.#b.length) throw new ProtocolViolation('message too short');
    const v = this.#b.readInt16BE(this.#o);
    this.#o += 2;
    return v;
  }

  byte(): number {
    if (this.#o + 1 > this.#b.length) throw new ProtocolViolation('message too short');
    return this.#b[this.#o++]!;
  }

  /** A NUL-terminated string (UTF-8); a string without its terminator is a violation. */
  cstring(): string {
    const end = this.#b.indexOf(0, this.#o);
    if (end < 0) throw new ProtocolViolation('unterminated string in message');
    const s = this.#b.toString('utf8', this.#o, end);
    this.#o = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    if (n < 0 || this.#o + n > this.#b.length) throw new ProtocolViolation('message too short');
    const v = this.#b.subarray(this.#o, this.#o + n);
    this.#o += n;
    return v;
  }
}

// ── Backend messages the gateway writes itself ──────────────────────────────────────────────

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** ErrorResponse ('E'); control characters in the texts are replaced (they come partly from decisions and parse errors). */
export function errorResponse(e: ErrorFields): Buffer {
  const clean = (s: string) => Array.from(s.slice(0, 4000), (ch) => (ch.charCodeAt(0) < 0x20 && ch !== '\n' && ch !== '\t') || ch === '\u007f' ? '?' : ch).join('');
  const parts = [Buffer.from('S'), cstr(e.severity), Buffer.from('V'), cstr(e.severity), Buffer.from('C'), cstr(e.code), Buffer.from('M'), cstr(clean(e.message))];
  if (e.detail !== undefined) parts.push(Buffer.from('D'), cstr(clean(e.detail)));
  if (e.hint !== undefined) parts.push(Buffer.from('H'), cstr(clean(e.hint)));
  parts.push(Buffer.from([0]));
  return message('E', Buffer.concat(parts));
}

export const authenticationOk = (): Buffer => message('R', int32(0));
export const authenticationCleartext = (): Buffer => message('R', int32(3));
export const parameterStatus = (name: string, value: string): Buffer => message('S', Buffer.concat([cstr(name), cstr(value)]));
export const backendKeyData = (pid: number, key: number): Buffer => message('K', Buffer.concat([int32(pid), int32(key)]));
export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer => message('Z', Buffer.from(status, 'latin1'));
export const emptyQueryResponse = (): Buffer => message('I', Buffer.alloc(0));

/** A CancelRequest packet for the upstream (its own pid and key). */
export function cancelRequest(pid: number, key: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(16, 0);
  b.writeUInt32BE(CANCEL_REQUEST, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(key, 12);
  return b;
}

/** A frontend Query ('Q') message. */
export const queryMessage = (sql: string): Buffer => message('Q', cstr(sql));

/** A frontend Parse ('P') message. */
export function parseMessage(name: string, sql: string, types: Buffer): Buffer {
  return message('P', Buffer.concat([cstr(name), cstr(sql), types]));
}

/** The fields of an ErrorResponse/NoticeResponse body: code letter → value. */
export function errorFields(bytes: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  const r = new Reader(bytes, 5);
  while (!r.done) {
    const code = r.byte();
    if (code === 0) break;
    out[String.fromCharCode(code)] = r.cstring();
  }
  return out;
}
