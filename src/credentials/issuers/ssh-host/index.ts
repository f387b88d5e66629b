// The `ssh-host` issuer kind: OpenSSH host certificates from the broker's host CA (ssh-host.ts),
// for a host proving its own identity (a workload token) — clients trust them by one
// `@cert-authority` line instead of pinning every host key. Decided on `Host::"<target>"`.
import { text } from '../../../common/validation.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import { need } from '../plugin.ts';
import type { IssuerPlugin } from '../plugin.ts';
import { sshHostConfig } from './config.ts';
import type { SshHostTarget } from './config.ts';

const impl = lazyModule<typeof import('./ssh-host.ts')>(import.meta.url, './ssh-host.ts');

export const sshHost: IssuerPlugin<SshHostTarget> = {
  kind: 'ssh-host',
  resourceType: 'Host',
  config: sshHostConfig,
  // The host keeps its key: the certificate is issued for the public host key it sends.
  request: { fields: { public_key: text({ max: 16384 }) }, params: (b) => (b.public_key !== undefined ? { publicKey: b.public_key } : {}) },
  cli: { hint: 'host certificates: `portcullis creds ssh-host`' },
  create: (target, deps) => {
    const s = need(deps.ssh?.hostCa, target, 'an SSH host CA (deps.ssh.hostCa)');
    return new (impl().SshHostIssuer)({ target, ca: s, clock: deps.clock });
  },
};
