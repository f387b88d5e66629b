// Small raw-HTTP helpers for the HTTP edge tests (pick the local address, send any headers).
import { request } from 'node:http';
import type { Harness } from '../integration/harness.ts';
import type { Json } from '../json.ts';

export interface Answer { status: number; body: Json; headers: Record<string, string | string[] | undefined> }

/** A raw HTTP request: pick the local address (127.0.0.2 is another loopback peer) and headers. */
export function raw(url: string, method: string, path: string, opts: { body?: string; headers?: Record<string, string>; localAddress?: string; family?: number } = {}): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), method, path, headers: { ...(opts.body !== undefined && { 'content-length': String(Buffer.byteLength(opts.body)) }), ...opts.headers }, ...(opts.localAddress && { localAddress: opts.localAddress }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export const json = (body: unknown, headers: Record<string, string> = {}) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
export const badKey = (id: string) => `pcx_${id}${'A'.repeat(32)}AAAAAA`;

export async function authnEvents(h: Harness, type: string): Promise<Json[]> {
  await h.running.broker.audit.flush();
  return h.running.broker.audit.query({ stream: 'authn', type, limit: 1000 });
}

