// Every URL Portcullis calls on its own (webhooks, jwks_uri, OIDC discovery and token endpoints,
// witness and signal sinks) goes through `outboundFetch`: a fetch-compatible function that refuses
// destinations inside the operator's network — loopback, link-local / cloud metadata, RFC 1918,
// CGNAT, IPv6 unique-local, unspecified, multicast, reserved, IPv4 embedded in IPv6 — and
// Portcullis' own listener, unless `outbound.allow_private` names them.
//
// The check is on the RESOLVED address, inside the connection's own DNS lookup: the address that
// was checked is the address connected to, so neither a hostname resolving to 169.254.169.254 nor
// DNS rebinding between a check and the connect gets through. IP literals in any spelling
// (decimal, octal, hex, IPv6 forms) are normalised by the WHATWG URL parser, then checked the same
// way. Redirects are followed only on request (`redirect: 'follow'`), each hop checked again.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { PortcullisError } from './errors.ts';

/** A destination refused by the outbound policy. The message names the address, never a secret. */
export class OutboundRefused extends PortcullisError {
  constructor(message: string) {
    super('outbound_refused', 502, message);
  }
}

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface OutboundOptions {
  /** CIDRs that may be called although they are private (e.g. `127.0.0.0/8` for dev and tests). */
  allowPrivate?: readonly string[];
  /** Portcullis' own listeners: never called, whatever allowPrivate says. */
  self?: readonly { host: string; port: number }[];
  /** DNS resolution (default: the system resolver); tests inject one. */
  resolve?: Resolver;
  /** Redirect hops followed with `redirect: 'follow'` (default 3). */
  maxRedirects?: number;
  /** Largest response body read (default 4 MiB). */
  maxBodyBytes?: number;
  /**
   * Whole-call limit (DNS, connect, TLS, headers, body, every redirect hop) when the caller gives
   * no `signal` (default 10 s): a destination that accepts and then trickles or never answers
   * cannot hold a call, a socket and its caller forever.
   */
  timeoutMs?: number;
}

export type OutboundFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

const FORBIDDEN: [string, [string, number, 'ipv4' | 'ipv6'][]][] = [
  ['unspecified', [['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']]],
  ['loopback', [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]],
  ['link-local / cloud metadata', [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']]],
  ['private (RFC 1918)', [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4']]],
  ['carrier-grade NAT', [['100.64.0.0', 10, 'ipv4']]],
  ['unique local', [['fc00::', 7, 'ipv6'], ['fec0::', 10, 'ipv6']]],
  ['multicast', [['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']]],
  ['reserved', [['192.0.0.0', 24, 'ipv4'], ['198.18.0.0', 15, 'ipv4'], ['240.0.0.0', 4, 'ipv4'], ['100::', 64, 'ipv6'], ['::', 96, 'ipv6']]],
  // Prefixes that carry an IPv4 address a translator or relay inside the network may reach, in a
  // form this file cannot decode reliably: local-use NAT64 (RFC 8215, the IPv4 address is split
  // around the u octet), Teredo (obfuscated client address), and documentation ranges, which are
  // never a legitimate destination.
  ['IPv4 translation (NAT64 local-use / Teredo)', [['64:ff9b:1::', 48, 'ipv6'], ['2001::', 32, 'ipv6']]],
  ['documentation', [['192.0.2.0', 24, 'ipv4'], ['198.51.100.0', 24, 'ipv4'], ['203.0.113.0', 24, 'ipv4'], ['2001:db8::', 32, 'ipv6'], ['3fff::', 20, 'ipv6']]],
];
const CATEGORIES: [string, BlockList][] = FORBIDDEN.map(([name, nets]) => {
  const b = new BlockList();
  for (const [net, prefix, type] of nets) b.addSubnet(net, prefix, type);
  return [name, b];
});

/** 16 bytes of an IPv6 address (dotted IPv4 tail allowed, zone id stripped). */
function v6Bytes(address: string): number[] {
  let a = address.split('%')[0]!.toLowerCase();
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    for (const p of dotted[1]!.split('.')) tail.push(Number(p));
    a = a.slice(0, -dotted[1]!.length) + '0:0';
  }
  const [head, rest] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined];
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  const bytes = groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
  if (dotted) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
function embeddedIPv4(address: string): string | undefined {
  const b = v6Bytes(address);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12); // ::ffff:a.b.c.d
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && zero(10, 12)) return v4(12); // ::ffff:0:a.b.c.d (SIIT, RFC 6052/7915)
  if (zero(0, 12) && !zero(12, 14)) return v4(12); // ::a.b.c.d (deprecated compatible form)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12); // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2); // 2002::/16 6to4
  return undefined;
}

/** Why an address may not be called by default (`undefined`: a public address). */
export function forbiddenReason(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  if (family === 6) {
    const v4 = embeddedIPv4(address);
    if (v4 !== undefined) {
      const r = forbiddenReason(v4);
      return r === undefined ? undefined : `${r} (IPv4 ${v4} inside IPv6)`;
    }
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [name, list] of CATEGORIES) if (list.check(address.split('%')[0]!, type)) return name;
  return undefined;
}

/** Parses `a.b.c.d/n`, `x::y/n` or a single address; throws a message naming what is wrong. */
export function parseCidr(text: string): { address: string; prefix: number; type: 'ipv4' | 'ipv6' } {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  const family = m ? isIP(m[1]!) : 0;
  if (!m || family === 0) throw new TypeError(`"${text}" is not an IP address or CIDR`);
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) throw new TypeError(`"${text}": prefix longer than ${max}`);
  return { address: m[1]!, prefix, type: family === 4 ? 'ipv4' : 'ipv6' };
}

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address.split('%')[0]!);
  return out;
}

/** The outbound policy: decides, for one resolved address and port, whether it may be called. */
class OutboundPolicy {
  readonly #allow = new BlockList();
  readonly #allowText: string[];
  readonly #self: readonly { host: string; port: number }[];

  constructor(opts: Pick<OutboundOptions, 'allowPrivate' | 'self'> = {}) {
    this.#allowText = [...(opts.allowPrivate ?? [])];
    for (const c of this.#allowText) {
      const p = parseCidr(c);
      this.#allow.addSubnet(p.address, p.prefix, p.type);
    }
    this.#self = opts.self ?? [];
  }

  #allowed(address: string): boolean {
    const family = isIP(address);
    if (this.#allow.check(address, family === 4 ? 'ipv4' : 'ipv6')) return true;
    const v4 = family === 6 ? embeddedIPv4(address) : undefined;
    return v4 !== undefined && this.#allow.check(v4, 'ipv4');
  }

  #isSelf(address: string, port: number): boolean {
    const plain = embeddedIPv4(address) ?? address;
    for (const s of this.#self) {
      if (s.port !== port) continue;
      const host = s.host.replace(/^\[|\]$/g, '');
      // A listener named by hostname (`listen.host: portcullis.internal`) is bound to whatever that
      // name resolved to — some address of this machine: treat it like a wildcard listener.
      if (isUnspecified(host) || host === 'localhost' || isIP(host) === 0) {
        if (forbiddenReason(plain) === 'loopback' || localAddresses().has(plain) || localAddresses().has(address)) return true;
      } else if (host === plain || host === address) {
        return true;
      }
    }
    return false;
  }

  /** Throws OutboundRefused when `address:port` may not be called. */
  check(address: string, port: number, hostname = address): void {
    const shown = hostname === address ? address : `${hostname} (${address})`;
    if (this.#isSelf(address, port)) throw new OutboundRefused(`outbound call refused: ${shown} port ${port} is Portcullis' own listener`);
    const why = forbiddenReason(address);
    if (why !== undefined && !this.#allowed(address)) {
      throw new OutboundRefused(`outbound call refused: ${shown} is ${why}; list it in outbound.allow_private to allow it`);
    }
  }
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const REDIRECT = new Set([301, 302, 303, 307, 308]);

async function bodyBytes(body: RequestInit['body']): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(await new Response(body).arrayBuffer());
}

/**
 * A fetch that only calls destinations the policy allows (see the file comment). The API a
 * caller needs: `const f = outboundFetch({ allowPrivate, self }); await f(url, init)`; refusals
 * reject with OutboundRefused.
 */
export function outboundFetch(opts: OutboundOptions = {}): OutboundFetch {
  const policy = new OutboundPolicy(opts);
  const resolve: Resolver = opts.resolve ?? ((h) => dnsLookup(h, { all: true, verbatim: true }));
  const maxRedirects = opts.maxRedirects ?? 3;
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const one = (url: URL, method: string, headers: Headers, body: Buffer | undefined, signal: AbortSignal | undefined): Promise<Response> =>
    new Promise<Response>((resolveRes, reject) => {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        reject(new OutboundRefused(`outbound call refused: scheme ${url.protocol} is not http or https`));
        return;
      }
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
      const o: RequestOptions = {
        method,
        host,
        port,
        path: `${url.pathname}${url.search}`,
        headers: { ...Object.fromEntries(headers), ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: false,
      };
      if (url.username || url.password) {
        reject(new OutboundRefused('outbound call refused: credentials in the URL are not allowed'));
        return;
      }
      if (isIP(host)) {
        try {
          policy.check(host, port);
        } catch (e) {
          reject(e);
          return;
        }
      } else {
        // The check runs inside the connection's own lookup: what is checked is what is used.
        o.lookup = ((hostname: string, lo: { all?: boolean }, cb: (err: Error | null, a?: string | LookupAddress[], f?: number) => void) => {
          resolve(hostname).then(
            (addrs) => {
              if (addrs.length === 0) throw new OutboundRefused(`outbound call refused: ${hostname} does not resolve`);
              for (const a of addrs) policy.check(a.address, port, hostname);
              if (lo.all) cb(null, addrs.map((a) => ({ address: a.address, family: a.family })));
              else cb(null, addrs[0]!.address, addrs[0]!.family);
            },
          ).catch((e: Error) => cb(e));
        }) as RequestOptions['lookup'];
      }
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(o, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBody) {
            res.destroy();
            reject(new OutboundRefused(`outbound call: response from ${url.origin} larger than ${maxBody} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const h = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          const status = res.statusCode ?? 502;
          resolveRes(new Response(NULL_BODY.has(status) ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: h }));
        });
      });
      req.on('error', reject);
      // Abort like fetch: reject with the signal's reason (TimeoutError for AbortSignal.timeout),
      // whether the answer has started or not.
      if (signal) {
        const onAbort = () => {
          reject(signal.reason);
          req.destroy();
        };
        if (signal.aborted) onAbort();
        else {
          signal.addEventListener('abort', onAbort, { once: true });
          req.on('close', () => signal.removeEventListener('abort', onAbort));
        }
      }
      if (body) req.end(body);
      else req.end();
    });

  return async (input, init = {}) => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    let method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    let body = await bodyBytes(init.body);
    const mode = init.redirect ?? 'follow';
    const signal = init.signal ?? AbortSignal.timeout(timeoutMs);
    for (let hop = 0; ; hop++) {
      const res = await one(url, method, headers, body, signal);
      const location = res.headers.get('location');
      if (!REDIRECT.has(res.status) || location === null || mode === 'manual') return res;
      if (mode === 'error') throw new OutboundRefused(`outbound call: ${url.origin} answered with a redirect, which is refused`);
      if (hop >= maxRedirects) throw new OutboundRefused(`outbound call: more than ${maxRedirects} redirects from ${url.origin}`);
      const next = new URL(location, url);
      // The next hop is checked like the first (its own lookup); credentials never follow to another origin.
      if (next.origin !== url.origin) {
        headers.delete('authorization');
        headers.delete('cookie');
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        headers.delete('content-type');
      }
      url = next;
    }
  };
}

/** The loopback networks dev servers and tests declare in `outbound.allow_private`. */
export const LOOPBACK = ['127.0.0.0/8', '::1/128'] as const;
