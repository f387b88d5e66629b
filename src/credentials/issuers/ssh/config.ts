// A `kind: ssh` target in portcullis.yaml: the hosts, which login principals each identity
// pattern may use, the certificate's source-address restriction and extensions.
import { mapping, oneOf, texts, z } from '../../../common/validation.ts';
import { targetFields, ttls } from '../plugin.ts';

const SSH_EXTENSIONS = [
  'permit-pty',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-X11-forwarding',
  'permit-user-rc',
] as const;
export type SshExtension = (typeof SSH_EXTENSIONS)[number];

export interface SshTarget {
  name: string;
  kind: 'ssh';
  hosts: string[];
  /** Identity id pattern (exact, or ending in `*`) → login principals it may use. */
  principals: Record<string, string[]>;
  max_ttl_ms: number;
  default_ttl_ms: number;
  /** CIDR list for the `source-address` critical option. */
  source_address?: string[];
  extensions: SshExtension[];
}

const PRINCIPAL_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const CIDR_RE = /^(\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?|[0-9a-fA-F:]+(\/\d{1,3})?)$/;

export const sshConfig = mapping({
  ...targetFields('ssh'),
  hosts: texts({ nonEmpty: true }),
  principals: z
    .record(
      z.string().refine((p) => !p.includes('*') || p.indexOf('*') === p.length - 1, 'only a trailing * is supported in identity patterns'),
      texts({ nonEmpty: true, pattern: PRINCIPAL_RE, hint: 'invalid login name' }),
    )
    .refine((p) => Object.keys(p).length > 0, 'required map of identity pattern → list of login principals'),
  source_address: texts({ nonEmpty: true, pattern: CIDR_RE, hint: 'expected an address or CIDR' }).optional(),
  extensions: z.array(oneOf(SSH_EXTENSIONS)).default(['permit-pty']),
}).transform((o, ctx): SshTarget => ({
  name: o.name,
  kind: 'ssh',
  hosts: o.hosts,
  principals: o.principals,
  ...ttls(o, ctx),
  ...(o.source_address && { source_address: o.source_address }),
  extensions: o.extensions,
}));
