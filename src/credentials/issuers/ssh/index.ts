// The `ssh` issuer kind: OpenSSH user certificates from the broker's user CA (ssh.ts), decided on
// `Host::"<target>"`; revocation through sshd's RevokedKeys (a KRL compiled from the lease table).
import { text } from '../../../common/validation.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import { need } from '../plugin.ts';
import type { IssuerPlugin } from '../plugin.ts';
import { sshConfig } from './config.ts';
import type { SshTarget } from './config.ts';

const impl = lazyModule<typeof import('./ssh.ts')>(import.meta.url, './ssh.ts');

export const ssh: IssuerPlugin<SshTarget> = {
  kind: 'ssh',
  resourceType: 'Host',
  config: sshConfig,
  // The holder's key pair stays with the holder: the certificate is issued for its public key.
  request: { fields: { public_key: text({ max: 16384 }) }, params: (b) => (b.public_key !== undefined ? { publicKey: b.public_key } : {}) },
  cli: { hint: 'SSH certificates: `portcullis creds ssh`' },
  create: (target, deps) => {
    const s = need(deps.ssh, target, 'an SSH CA (deps.ssh)');
    return new (impl().SshIssuer)({ target, ca: s.ca, clock: deps.clock, ...(s.krlPath !== undefined && { krlPath: s.krlPath }), ...(deps.leases && { leases: deps.leases }) });
  },
};
