// A `kind: ssh` gateway in portcullis.yaml: where it listens, its own host key, the `kind: ssh`
// target it fronts (Cedar `Host::"<target>"`, upstream certificates), the host's address and pinned
// host keys, and what is recorded.
import { duration, flag, integer, mapping, text, texts, z } from '../../common/validation.ts';
import { gatewayFields } from '../plugin.ts';

export interface SshGatewayConfig {
  name: string;
  kind: 'ssh';
  listen: { host: string; port: number };
  /** The `kind: ssh` credential target: decisions are on `Host::"<target>"`, upstream certificates come from it. */
  target: string;
  /** OpenSSH private key file of the gateway's own host key (relative: against the config's folder). */
  host_key_file: string;
  /** Where the host's sshd listens. */
  upstream: { host: string; port: number };
  /** Pinned host public keys of the upstream. The gateway never learns a host key on first use. */
  host_keys: string[];
  /** Lifetime of the upstream certificate's lease; the session ends when it does (default: the target's default TTL). */
  lease_ttl_ms?: number;
  /** Opt-in: keystrokes of interactive sessions in the recording (they can contain typed passwords). */
  record_input: boolean;
  /** How long a client has to authenticate (default 30 s). */
  auth_timeout_ms: number;
  max_connections: number;
}

const HOST_KEY_RE = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}( .*)?$/;

/** `host:port` or `[v6]:port` (default port 22). */
const address = text({ max: 300 }).transform((v, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(v);
  const port = m?.[3] !== undefined ? Number(m[3]) : 22;
  if (!m || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected host:port, got "${v.slice(0, 60)}"` });
    return z.NEVER;
  }
  return { host: (m[1] ?? m[2])!, port };
});

export const sshGatewayConfig = mapping({
  ...gatewayFields('ssh'),
  host_key_file: text({ max: 1024 }),
  upstream: address,
  host_keys: texts({ nonEmpty: true, pattern: HOST_KEY_RE, hint: 'expected an OpenSSH public key line (ssh-ed25519 AAAA…)' }),
  lease_ttl: duration({ min: 60_000, max: 7 * 86_400_000, range: 'must be between 1m and 7d' }).optional(),
  record_input: flag().optional(),
  auth_timeout: duration({ min: 1000, max: 600_000, range: 'must be between 1s and 10m' }).optional(),
  max_connections: integer(1, 100_000).optional(),
}).transform((o): SshGatewayConfig => ({
  name: o.name,
  kind: 'ssh',
  listen: o.listen,
  target: o.target,
  host_key_file: o.host_key_file,
  upstream: o.upstream,
  host_keys: o.host_keys,
  ...(o.lease_ttl !== undefined && { lease_ttl_ms: o.lease_ttl }),
  record_input: o.record_input ?? false,
  auth_timeout_ms: o.auth_timeout ?? 30_000,
  max_connections: o.max_connections ?? 256,
}));
