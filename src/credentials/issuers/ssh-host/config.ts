// A `kind: ssh-host` target: which host names each (host) identity may have certified, for how long.
import { mapping, texts, z } from '../../../common/validation.ts';
import { targetFields, ttls } from '../plugin.ts';

export interface SshHostTarget {
  name: string;
  kind: 'ssh-host';
  /** Identity id pattern (exact, or ending in `*`) → the host names it may have in its certificate. */
  principals: Record<string, string[]>;
  max_ttl_ms: number;
  default_ttl_ms: number;
}

// A DNS name or address, optionally with a leading `*.` (OpenSSH matches host certificate
// principals as patterns); no other wildcards, no spaces or commas.
const HOST_RE = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?$/;

export const sshHostConfig = mapping({
  ...targetFields('ssh-host'),
  principals: z
    .record(
      z.string().refine((p) => !p.includes('*') || p.indexOf('*') === p.length - 1, 'only a trailing * is supported in identity patterns'),
      texts({ nonEmpty: true, pattern: HOST_RE, hint: 'expected a host name or address (a leading *. allowed)' }),
    )
    .refine((p) => Object.keys(p).length > 0, 'required map of identity pattern → host names'),
}).transform((o, ctx): SshHostTarget => ({ name: o.name, kind: 'ssh-host', principals: o.principals, ...ttls(o, ctx) }));
