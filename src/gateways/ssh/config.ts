// A `kind: ssh` gateway in portcullis.yaml: where it listens, its host key, which certificates log
// in to it (`client_target`), the hosts behind it with their pinned host keys, and recording options.
import { duration, flag, integer, mapping, text, texts, z } from '../../common/validation.ts';

export interface SshGatewayTarget {
  /** The name users put after `@` in the SSH user name, and the Cedar `Host` decided on. */
  name: string;
  /** The `kind: ssh` credential target whose CA-signed certificates the host accepts (default: name). */
  credential_target: string;
  host: string;
  port: number;
  /** Pinned host public keys. The gateway never learns a host key on first use. */
  host_keys: string[];
}

export interface SshGatewayConfig {
  name: string;
  kind: 'ssh';
  listen: { host: string; port: number };
  /** OpenSSH private key file of the gateway's own host key. */
  host_key_file: string;
  /** The `kind: ssh` credential target whose certificates log in to the gateway (never accepted by hosts). */
  client_target: string;
  upstream_ttl_ms: number;
  record_input: boolean;
  login_timeout_ms: number;
  max_connections: number;
  targets: SshGatewayTarget[];
  /** OpenSSH client binary (tests). */
  ssh_binary?: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const HOST_KEY_RE = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}( .*)?$/;

/** `host:port` or `[v6]:port`. */
function address(defaultPort?: number) {
  return text({ max: 300 }).transform((v, ctx) => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(v);
    const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
    if (!m || port === undefined || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected host:port, got "${v.slice(0, 60)}"` });
      return z.NEVER;
    }
    return { host: (m[1] ?? m[2])!, port };
  });
}

export const sshGatewayConfig = mapping({
  name: text({ pattern: NAME_RE, hint: 'expected lowercase letters, digits, . _ -' }),
  kind: z.literal('ssh'),
  listen: address(),
  host_key_file: text(),
  client_target: text({ pattern: NAME_RE, hint: 'expected the name of a kind: ssh target' }),
  upstream_ttl: duration({ min: 60_000, max: 24 * 3_600_000 }).default(3_600_000),
  record_input: flag().default(false),
  login_timeout: duration({ min: 1000, max: 600_000 }).default(30_000),
  max_connections: integer(1, 100_000).default(256),
  targets: z.array(mapping({
    name: text({ pattern: NAME_RE, hint: 'expected lowercase letters, digits, . _ -' }),
    credential_target: text({ pattern: NAME_RE }).optional(),
    address: address(22),
    host_keys: texts({ nonEmpty: true, pattern: HOST_KEY_RE, hint: 'expected an OpenSSH public key line (ssh-ed25519 AAAA…)' }),
  })).min(1),
}).transform((o, ctx): SshGatewayConfig => {
  const seen = new Set<string>();
  o.targets.forEach((t, i) => {
    if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: ['targets', i, 'name'], message: `duplicate target ${t.name}` });
    seen.add(t.name);
    if ((t.credential_target ?? t.name) === o.client_target) ctx.addIssue({ code: 'custom', path: ['targets', i, 'credential_target'], message: 'must differ from client_target: certificates that log in to the gateway must not log in to hosts' });
  });
  return {
    name: o.name,
    kind: 'ssh',
    listen: o.listen,
    host_key_file: o.host_key_file,
    client_target: o.client_target,
    upstream_ttl_ms: o.upstream_ttl,
    record_input: o.record_input,
    login_timeout_ms: o.login_timeout,
    max_connections: o.max_connections,
    targets: o.targets.map((t) => ({ name: t.name, credential_target: t.credential_target ?? t.name, host: t.address.host, port: t.address.port, host_keys: t.host_keys })),
  };
});
