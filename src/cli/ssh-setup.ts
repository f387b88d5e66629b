// `portcullis ssh setup-host`: what an sshd host needs to trust Portcullis — the user CA, the
// revocation list (fetched, ETag-aware, by a systemd timer), its own host certificate — and the
// `@cert-authority` line clients put in known_hosts. Printed, or written under a root (--write).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { address, api } from './client.ts';
import { out } from './output.ts';
import { json } from './args.ts';

export interface HostSetup {
  /** Absolute path on the host → content. */
  files: Record<string, string>;
  /** For clients' ~/.ssh/known_hosts (or /etc/ssh/ssh_known_hosts). */
  known_hosts: string;
}

/** The files for a host, from the CAs and the address its KRL is fetched from. */
export function hostSetup(o: { userCa: string; hostCa: string; krlUrl: string; hostKey: string; hostPattern: string }): HostSetup {
  const cert = o.hostKey.replace(/\.pub$/, '').replace(/$/, '-cert.pub');
  return {
    files: {
      '/etc/ssh/portcullis_user_ca.pub': `${o.userCa}\n`,
      '/etc/ssh/sshd_config.d/portcullis.conf': [
        '# Portcullis: user certificates from its CA, refused once revoked (the KRL below, kept fresh',
        '# by portcullis-krl.timer), and this host presented by its Portcullis host certificate.',
        'TrustedUserCAKeys /etc/ssh/portcullis_user_ca.pub',
        'RevokedKeys /etc/ssh/portcullis.krl',
        `HostCertificate ${cert}`,
        '',
      ].join('\n'),
      // Empty until the first fetch: sshd refuses every key while RevokedKeys is unreadable.
      '/etc/ssh/portcullis.krl': '',
      '/etc/systemd/system/portcullis-krl.service': [
        '[Unit]',
        'Description=Fetch the Portcullis SSH revocation list',
        'Wants=network-online.target',
        'After=network-online.target',
        '',
        '[Service]',
        'Type=oneshot',
        // ETag-aware: an unchanged list is not downloaded again; a new one replaces the file atomically.
        `ExecStart=/bin/sh -c 'curl -fsS --etag-compare /var/lib/portcullis-krl/etag --etag-save /var/lib/portcullis-krl/etag -o /etc/ssh/portcullis.krl.new ${o.krlUrl} && if [ -s /etc/ssh/portcullis.krl.new ]; then mv /etc/ssh/portcullis.krl.new /etc/ssh/portcullis.krl; else rm -f /etc/ssh/portcullis.krl.new; fi'`,
        'StateDirectory=portcullis-krl',
        '',
      ].join('\n'),
      '/etc/systemd/system/portcullis-krl.timer': [
        '[Unit]',
        'Description=Fetch the Portcullis SSH revocation list every 10 seconds',
        '',
        '[Timer]',
        'OnBootSec=0',
        'OnUnitActiveSec=10s',
        'AccuracySec=1s',
        '',
        '[Install]',
        'WantedBy=timers.target',
        '',
      ].join('\n'),
    },
    known_hosts: `@cert-authority ${o.hostPattern} ${o.hostCa}`,
  };
}

/** Registers `setup-host` under the `ssh` command. */
export function registerSetupHost(ssh: Command): void {
  ssh
    .command('setup-host')
    .description('print (or --write) what an sshd host needs: the user CA, sshd_config lines, a KRL refresh timer; and the known_hosts line for clients')
    .option('--host-key <path>', 'the host key its certificate is for (get it with `portcullis creds ssh-host`)', '/etc/ssh/ssh_host_ed25519_key.pub')
    .option('--hosts <pattern>', 'which host names clients trust the host CA for, e.g. *.prod.example.com', '*')
    .option('--write <root>', 'write the files under this root (/ for the real thing) instead of printing them')
    .addOption(json())
    .action(async (o: { hostKey: string; hosts: string; write?: string; json?: boolean }) => {
      const t = (await api((c) => c.GET('/v1/targets'))) as { ssh_user_ca: string; ssh_host_ca: string };
      const setup = hostSetup({ userCa: t.ssh_user_ca, hostCa: t.ssh_host_ca, krlUrl: `${address()}/v1/ssh/krl`, hostKey: o.hostKey, hostPattern: o.hosts });
      if (o.write !== undefined) {
        for (const [path, content] of Object.entries(setup.files)) {
          const at = join(o.write, path);
          mkdirSync(dirname(at), { recursive: true });
          writeFileSync(at, content, { mode: 0o644 });
        }
      }
      out(!!o.json, setup, () =>
        [
          ...(o.write === undefined ? Object.entries(setup.files).map(([p, c]) => `# ${p}\n${c}`) : [`wrote ${Object.keys(setup.files).length} files under ${o.write}`]),
          'Then: systemctl daemon-reload && systemctl enable --now portcullis-krl.timer && systemctl reload ssh',
          `Clients trust this host's certificate with one known_hosts line:\n${setup.known_hosts}`,
        ].join('\n'),
      );
    });
}
