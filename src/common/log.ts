// The operational log: pino, one JSON object per line on stdout (or a person-readable line per
// event for the dev server). Never handed secrets: callers log ids, names and outcomes only, and
// the request line carries the route and path without the query string.
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import type { LogConfig } from '../config/server.ts';

export type { Logger } from 'pino';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'service']);

/** `12:00:01 INFO  request  status=200 route=/v1/authorize ms=1.2` — for `format: pretty`. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  let partial = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const time = new Date(o.time as number).toISOString().slice(11, 19);
          const rest = Object.entries(o)
            .filter(([k]) => !SKIP.has(k))
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          out.write(`${time} ${(LEVEL_NAMES[o.level as number] ?? String(o.level)).padEnd(5)} ${String(o.msg ?? '')}${rest ? `  ${rest}` : ''}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}

/** A logger for `cfg`, writing to `destination` (default stdout). */
export function createLogger(cfg: LogConfig, destination: NodeJS.WritableStream = process.stdout): Logger {
  const options = { level: cfg.level, base: { service: 'portcullis' }, timestamp: pino.stdTimeFunctions.epochTime };
  return pino(options, cfg.format === 'pretty' ? prettyStream(destination) : destination);
}

/** A logger that writes nothing (tests that do not look at the log). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
