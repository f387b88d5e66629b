// File transfers through the gateway as `ssh.file` events: scp's remote command (`scp -t|-f PATH`)
// and the client's SFTP requests (open for read/write, remove, rename, mkdir, rmdir), read from the
// client→server byte stream without buffering file data.

/** `scp -t …` (upload to the target) or `scp -f …` (download); undefined for any other command. */
export function scpTransfer(command: string): { direction: 'upload' | 'download'; path: string } | undefined {
  const words = command.trim().split(/\s+/);
  if (words.length < 2 || !/(^|\/)scp$/.test(words[0]!)) return undefined;
  let direction: 'upload' | 'download' | undefined;
  let i = 1;
  for (; i < words.length && words[i]!.startsWith('-'); i++) {
    const w = words[i]!;
    if (w === '--') {
      i++;
      break;
    }
    if (w.includes('t')) direction = 'upload';
    if (w.includes('f')) direction = 'download';
  }
  if (!direction) return undefined;
  return { direction, path: words.slice(i).join(' ').slice(0, 4096) };
}

export interface SftpEvent {
  op: 'open' | 'remove' | 'rename' | 'mkdir' | 'rmdir' | 'symlink';
  path: string;
  to?: string;
  mode?: 'read' | 'write' | 'read-write';
}

const FXP_OPEN = 3;
const FXP_REMOVE = 13;
const FXP_MKDIR = 14;
const FXP_RMDIR = 15;
const FXP_RENAME = 18;
const FXP_SYMLINK = 20;
const INTERESTING = new Set([FXP_OPEN, FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_RENAME, FXP_SYMLINK]);
const MAX_PACKET = 256 * 1024 + 64;

/** Incremental SFTP (v3) request reader over the client's input. Malformed input stops it, never throws. */
export class SftpWatcher {
  #emit: (e: SftpEvent) => void;
  #buf = Buffer.alloc(0);
  #skip = 0;
  #dead = false;

  constructor(emit: (e: SftpEvent) => void) {
    this.#emit = emit;
  }

  push(d: Buffer): void {
    if (this.#dead) return;
    let data = d;
    while (data.length > 0 && !this.#dead) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, data.length);
        this.#skip -= n;
        data = data.subarray(n);
        continue;
      }
      this.#buf = Buffer.concat([this.#buf, data]);
      data = Buffer.alloc(0);
      while (this.#buf.length >= 5 && this.#skip === 0) {
        const len = this.#buf.readUInt32BE(0);
        if (len < 1 || len > MAX_PACKET) {
          this.#dead = true;
          return;
        }
        const type = this.#buf[4]!;
        if (!INTERESTING.has(type)) {
          // Not needed (READ/WRITE data …): skip without buffering it.
          const have = this.#buf.length - 4;
          if (have >= len) {
            this.#buf = this.#buf.subarray(4 + len);
          } else {
            this.#skip = len - have;
            this.#buf = Buffer.alloc(0);
          }
          continue;
        }
        if (this.#buf.length < 4 + len) break;
        const packet = this.#buf.subarray(5, 4 + len);
        this.#buf = this.#buf.subarray(4 + len);
        this.#parse(type, packet);
      }
    }
  }

  #parse(type: number, p: Buffer): void {
    let o = 4; // request id
    const str = (): string | undefined => {
      if (o + 4 > p.length) return undefined;
      const n = p.readUInt32BE(o);
      if (o + 4 + n > p.length || n > 4096) return undefined;
      const s = p.subarray(o + 4, o + 4 + n).toString('utf8');
      o += 4 + n;
      return s;
    };
    const path = str();
    if (path === undefined) return;
    switch (type) {
      case FXP_OPEN: {
        const flags = o + 4 <= p.length ? p.readUInt32BE(o) : 0;
        const r = (flags & 1) !== 0;
        const w = (flags & (2 | 4 | 8 | 0x10)) !== 0;
        return this.#emit({ op: 'open', path, mode: r && w ? 'read-write' : w ? 'write' : 'read' });
      }
      case FXP_REMOVE:
        return this.#emit({ op: 'remove', path });
      case FXP_MKDIR:
        return this.#emit({ op: 'mkdir', path });
      case FXP_RMDIR:
        return this.#emit({ op: 'rmdir', path });
      case FXP_RENAME: {
        const to = str();
        return this.#emit({ op: 'rename', path, ...(to !== undefined ? { to } : {}) });
      }
      case FXP_SYMLINK: {
        const to = str();
        return this.#emit({ op: 'symlink', path, ...(to !== undefined ? { to } : {}) });
      }
    }
  }
}
