// A real webhook receiver on 127.0.0.1 that verifies Portcullis signatures.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { verifyWebhookSignature } from '../../src/access/index.ts';
import type { Json } from '../json.ts';

export interface Received {
  type: string;
  body: Json;
  valid: boolean;
  delivery: string;
}

export interface Receiver {
  url: string;
  received: Received[];
  hits: number;
  /** Resolves when a verified event of this type has arrived. */
  waitFor(type: string, timeoutMs?: number): Promise<Received>;
  close(): Promise<void>;
}

/** `failFirst`: answer 500 to the first N requests; `hang`: never answer. */
export async function startReceiver(secret: string, opts: { failFirst?: number; alwaysFail?: boolean; hang?: boolean } = {}): Promise<Receiver> {
  const received: Received[] = [];
  const waiters: { type: string; resolve: (r: Received) => void }[] = [];
  const r: Receiver = {
    url: '',
    received,
    hits: 0,
    waitFor(type, timeoutMs = 60_000) { // a hang detector: deliveries are slow on a loaded machine
      const have = received.find((x) => x.type === type && x.valid);
      if (have) return Promise.resolve(have);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${type} webhook within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ type, resolve: (x) => (clearTimeout(t), resolve(x)) });
      });
    },
    close: () => new Promise<void>((res) => (server.closeAllConnections(), server.close(() => res()))),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.hits++;
      if (opts.hang) return;
      if (opts.alwaysFail || r.hits <= (opts.failFirst ?? 0)) {
        res.writeHead(500).end('nope');
        return;
      }
      const raw = Buffer.concat(chunks).toString('utf8');
      const valid = verifyWebhookSignature(secret, req.headers['portcullis-signature'] as string, raw);
      const body = JSON.parse(raw);
      const item = { type: body.type as string, body, valid, delivery: req.headers['portcullis-delivery'] as string };
      received.push(item);
      res.writeHead(valid ? 204 : 401).end();
      if (valid) for (const w of waiters.filter((x) => x.type === item.type)) w.resolve(item);
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  r.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  return r;
}
