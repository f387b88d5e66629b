// The PROXY protocol (HAProxy's, v1 text and v2 binary) on the API's listener: a load balancer in
// `listen.trusted_proxies` that sends it tells us the client's address below TLS and HTTP.
//
// - Only a connection FROM a trusted proxy is read for a header, and it must carry one: no header,
//   a malformed or oversized one, or none within `listen.timeouts.headers` closes the connection.
//   Anyone else is served as themselves (a header they send is just bad HTTP or TLS), so a client
//   can never claim an address, and health checks and scrapes that reach a replica directly work.
// - v2 `LOCAL` (the balancer's own health checks) and v1 `UNKNOWN` keep the proxy's address.
// - The header's source becomes the connection's `remoteAddress`/`remotePort` (on the TLS socket
//   too), so `req.ip`, rate limits, request logs and audit records see the client. An
//   X-Forwarded-For on such a connection is not believed (the client is not a trusted proxy).
import { BlockList, isIP } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Server, Socket } from 'node:net';
import { Command, TransportProtocol, V1ProxyProtocol, V2ProxyProtocol, IPv4ProxyAddress, IPv6ProxyAddress } from 'proxy-protocol-js';
import type { Logger } from '../common/log.ts';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** The spec's maximum for a v1 line, CRLF included. */
const V1_MAX = 107;
/** A v2 header's fixed part, and our cap on its length field (addresses plus a few TLVs). */
const V2_FIXED = 16;
const V2_MAX = V2_FIXED + 2048;

export interface ProxiedPeer {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/** Why a header was refused (safe to log: it never contains the bytes themselves). */
export class ProxyHeaderError extends Error {}

/** A matcher for `listen.trusted_proxies` (addresses and CIDRs, IPv4 and IPv6; IPv4-mapped IPv6 peers match their IPv4 entries). */
export function trustedPeers(list: readonly string[]): (address: string | undefined) => boolean {
  const block = new BlockList();
  for (const entry of list) {
    const [addr, prefix] = entry.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) block.addAddress(addr, type);
    else block.addSubnet(addr, Number(prefix), type);
  }
  return (address) => {
    if (address === undefined) return false;
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    if (v4 !== undefined) return block.check(v4, 'ipv4') || block.check(address, 'ipv6');
    return block.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * Parses a header at the start of `buf`. Returns undefined while more bytes are needed, or the
 * header's length and the peer it names (null: keep the connection's own address).
 */
export function parseProxyHeader(buf: Buffer): { length: number; peer: ProxiedPeer | null } | undefined {
  if (buf.length < V1_PREFIX.length && (V1_PREFIX.subarray(0, buf.length).equals(buf) || V2_SIGNATURE.subarray(0, buf.length).equals(buf))) return undefined;
  if (buf.subarray(0, V1_PREFIX.length).equals(V1_PREFIX)) return parseV1(buf);
  if (buf.length < V2_SIGNATURE.length) {
    if (V2_SIGNATURE.subarray(0, buf.length).equals(buf)) return undefined;
    throw new ProxyHeaderError('the connection does not start with a PROXY protocol header');
  }
  if (!buf.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE)) throw new ProxyHeaderError('the connection does not start with a PROXY protocol header');
  return parseV2(buf);
}

function parseV1(buf: Buffer): { length: number; peer: ProxiedPeer | null } | undefined {
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
    return undefined;
  }
  const length = end + 2;
  if (length > V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
  const line = buf.subarray(0, end).toString('latin1');
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) return { length, peer: null };
  let h: V1ProxyProtocol;
  try {
    h = V1ProxyProtocol.parse(`${line}\r\n`);
  } catch {
    throw new ProxyHeaderError('malformed PROXY v1 header');
  }
  const want = h.inetProtocol === 'TCP4' ? 4 : h.inetProtocol === 'TCP6' ? 6 : 0;
  const port = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
  if (want === 0 || isIP(h.source.ipAddress) !== want || isIP(h.destination.ipAddress) !== want || !port(h.source.port) || !port(h.destination.port)) {
    throw new ProxyHeaderError('malformed PROXY v1 header (addresses, ports or protocol)');
  }
  return { length, peer: { address: h.source.ipAddress, port: h.source.port, family: want === 4 ? 'IPv4' : 'IPv6' } };
}

function parseV2(buf: Buffer): { length: number; peer: ProxiedPeer | null } | undefined {
  if (buf.length < V2_FIXED) return undefined;
  const length = V2_FIXED + buf.readUInt16BE(14);
  if (length > V2_MAX) throw new ProxyHeaderError(`PROXY v2 header longer than ${V2_MAX} bytes`);
  if (buf.length < length) return undefined;
  if (buf[12]! >> 4 !== 2) throw new ProxyHeaderError('PROXY header of an unknown version');
  let h: V2ProxyProtocol;
  try {
    h = V2ProxyProtocol.parse(new Uint8Array(buf.subarray(0, length)));
  } catch {
    throw new ProxyHeaderError('malformed PROXY v2 header');
  }
  if (h.command === Command.LOCAL) return { length, peer: null };
  const a = h.proxyAddress;
  if (a instanceof IPv4ProxyAddress) {
    if (h.transportProtocol !== TransportProtocol.STREAM) throw new ProxyHeaderError('PROXY v2 header for a datagram connection');
    return { length, peer: { address: a.sourceAddress.address.join('.'), port: a.sourcePort, family: 'IPv4' } };
  }
  if (a instanceof IPv6ProxyAddress) {
    if (h.transportProtocol !== TransportProtocol.STREAM) throw new ProxyHeaderError('PROXY v2 header for a datagram connection');
    const b = a.sourceAddress.address;
    const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
    // The canonical (compressed) text form, as Node reports IPv6 peers.
    const address = new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
    return { length, peer: { address, port: a.sourcePort, family: 'IPv6' } };
  }
  return { length, peer: null }; // UNSPEC or a UNIX socket: nothing to say about the client
}

/** The client's address on a socket (and, through `secureConnection`, on its TLS socket). */
function setPeer(socket: Socket, peer: ProxiedPeer): void {
  Object.defineProperty(socket, 'remoteAddress', { value: peer.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: peer.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: peer.family, configurable: true });
}

/**
 * Reads a PROXY header on every connection from a trusted proxy before the server (HTTP or TLS)
 * sees it. Install on the server before it listens.
 */
export function acceptProxyProtocol(server: Server, o: { trusted: readonly string[]; timeoutMs: number; logger?: Logger }): void {
  const isTrusted = trustedPeers(o.trusted);
  const tls = server instanceof TlsServer;
  const proxied = new WeakMap<Socket, ProxiedPeer>();
  const downstream = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  const pass = (socket: Socket) => {
    for (const l of downstream) l.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    if (!isTrusted(socket.remoteAddress)) return pass(socket);
    const from = socket.remoteAddress;
    let buf: Buffer = Buffer.alloc(0);
    const refuse = (why: string) => {
      o.logger?.warn({ peer: from, reason: why }, 'PROXY protocol header refused; connection closed');
      socket.destroy();
    };
    const timer = setTimeout(() => refuse('no PROXY protocol header in time'), o.timeoutMs);
    timer.unref();
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let got: ReturnType<typeof parseProxyHeader>;
      try {
        got = parseProxyHeader(buf);
      } catch (err) {
        cleanup();
        return refuse((err as Error).message);
      }
      if (got === undefined) return;
      cleanup();
      socket.pause();
      if (got.peer !== null) {
        setPeer(socket, got.peer);
        proxied.set(socket, got.peer);
      }
      const rest = buf.subarray(got.length);
      if (rest.length > 0) socket.unshift(rest);
      pass(socket);
      // HTTP reads on from the socket; a TLS server has taken its handle over (and the unshifted
      // bytes with it), so resuming the raw socket there would steal the handshake.
      if (!tls) socket.resume();
    };
    const onEnd = () => {
      cleanup();
      socket.destroy();
    };
    const onError = () => {
      cleanup();
      socket.destroy();
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
  // A TLS server wraps the raw socket: its TLS socket reports the proxied peer too.
  server.prependListener('secureConnection', (tlsSocket: Socket & { _parent?: Socket }) => {
    const peer = tlsSocket._parent && proxied.get(tlsSocket._parent);
    if (peer) setPeer(tlsSocket, peer);
  });
}
