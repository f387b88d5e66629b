// A real SSH gateway in this process in front of a real sshd, with a real credential service (SQLite
// leases, Portcullis SSH CA), a policy function, an in-memory session stream, and the real OpenSSH
// client helpers the gateway tests use.
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { systemClock } from '../../src/common/clock.ts';
import { validateTargets } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import type { CredentialService } from '../../src/credentials/service.ts';
import type { DecisionRequest } from '../../src/credentials/types.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import type { SshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { validateConfig } from '../../src/common/validation.ts';
import { sshGatewayConfig } from '../../src/gateways/ssh/config.ts';
import { SshGateway } from '../../src/gateways/ssh/gateway.ts';
import type { SshGatewayHost } from '../../src/gateways/ssh/host.ts';
import { MemoryAudit, sqliteLeases } from '../credentials/helpers.ts';
import { startSshd, sshUser } from '../credentials/sshd.ts';
import type { Sshd } from '../credentials/sshd.ts';

export const run = promisify(execFile);

/** Cedar stand-in: a function of the decision request (tests swap it). */
export type Policy = (req: { identityId: string; action: string; resource: { type: string; id: string }; context: Record<string, unknown> }) => boolean;

export interface Live {
  id: string;
  leaseIds: string[];
  identityId: string;
  terminate(reason: string): void;
}

export interface GatewayFixture {
  dir: string;
  ca: SshCa;
  svc: CredentialService;
  audit: MemoryAudit;
  authn: { reason: string; detail: Record<string, unknown> }[];
  gateway: SshGateway;
  port: number;
  sshd: Sshd;
  hostKeyLine: string;
  live: Map<string, Live>;
  policy: { current: Policy };
  /** A fresh user key with a gateway certificate for `identity` (issued through the service). */
  clientKey(identity?: string, opts?: { ttl?: string }): Promise<{ key: string; leaseId: string; serial: string }>;
  /** Runs `ssh -p gw login@target CMD`; resolves with the exit code and output. */
  ssh(key: string, user: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  sessionRecords(id?: string): { type: string; payload: Record<string, unknown> }[];
  stop(): Promise<void>;
}

let keyN = 0;

export async function startGatewayFixture(dir: string, o: { upstreamHostKeys?: string[]; recordInput?: boolean } = {}): Promise<GatewayFixture> {
  mkdirSync(dir, { recursive: true });
  const ca = generateSshCa();
  const sshdDir = join(dir, 'sshd');
  mkdirSync(sshdDir);
  const sshd = await startSshd(sshdDir, { caPublicKeyLine: ca.publicKeyLine, krlPath: join(dir, 'revoked.krl'), principals: ['ops'] });
  const hostKeyLine = readFileSync(join(sshdDir, 'host.pub'), 'utf8').trim();
  const targets = validateTargets([
    { name: 'gw', kind: 'ssh', hosts: ['gateway'], principals: { 'user:*': ['portcullis-gateway'] }, max_ttl: '1h' },
    { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'user:alice@example.com': ['ops'], 'user:bob@example.com': ['ops'] }, max_ttl: '1h', extensions: ['permit-pty', 'permit-port-forwarding'] },
  ]);
  const policy: { current: Policy } = { current: () => true };
  const audit = new MemoryAudit();
  let decisions = 0;
  const decide = async (req: DecisionRequest) => ({ decision: policy.current({ identityId: req.identityId, action: req.action, resource: req.resource, context: {} }) ? 'allow' as const : 'deny' as const, decisionId: `dec_${++decisions}` });
  const svc = createCredentialService({ leases: sqliteLeases(), clock: systemClock, audit, decide, targets, ssh: { ca, krlPath: join(dir, 'revoked.krl') } });
  const live = new Map<string, Live>();
  const authn: GatewayFixture['authn'] = [];
  const host: SshGatewayHost = {
    now: () => Date.now(),
    userCaPublicKey: () => ca.publicKeyLine,
    async certificateLease(serial) {
      const r = await svc.introspect('ssh', serial);
      if (!r.lease) return undefined;
      return { id: r.lease.id, identityId: r.lease.identityId, target: r.lease.target, active: r.active, sessionId: r.lease.sessionId, grantId: r.lease.grantId };
    },
    async decide(req) {
      const allowed = policy.current(req);
      const decisionId = `dec_${++decisions}`;
      await audit.append({ stream: 'authz', type: 'authz.decision', actor: req.identityId, decision: allowed ? 'allow' : 'deny', payload: { action: req.action, resource: req.resource, context: req.context, decision_id: decisionId } });
      return { allowed, decisionId };
    },
    async issueCertificate(req) {
      const r = await svc.issue({ identityId: req.identityId, target: req.target, ttl: req.ttlMs, purpose: req.purpose, params: { publicKey: req.publicKey } });
      return { leaseId: r.lease.id, certificate: r.credential.certificate as string };
    },
    async revokeLease(leaseId, reason) {
      await svc.revoke({ lease: leaseId }, { by: 'gateway', reason });
    },
    async record(type, actor, payload) {
      await audit.append({ stream: 'session' as 'admin', type, actor, payload });
    },
    async authnFailure(reason, detail) {
      authn.push({ reason, detail });
    },
    register(s) {
      live.set(s.id, { id: s.id, leaseIds: s.bindings.leaseIds, identityId: s.bindings.identityId, terminate: s.terminate });
      return () => live.delete(s.id);
    },
    newSessionId: () => `gws_${randomBytes(12).toString('base64url')}`,
  };
  // Until the live-session registry is merged: the backstop re-validation every 250 ms.
  const sweep = setInterval(() => {
    for (const s of live.values()) {
      void Promise.all(s.leaseIds.map((l) => svc.isActive(l))).then((ok) => {
        if (ok.some((x) => !x)) s.terminate('lease revoked');
      });
    }
  }, 250);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'gw_host')]);
  const cfg = validateConfig(sshGatewayConfig, {
    name: 'ssh-gw', kind: 'ssh', listen: '127.0.0.1:0', host_key_file: join(dir, 'gw_host'), client_target: 'gw', record_input: o.recordInput ?? false,
    targets: [{ name: 'web-1', address: `127.0.0.1:${sshd.port}`, host_keys: o.upstreamHostKeys ?? [hostKeyLine] }],
  }, 'gateways[0]');
  const gateway = new SshGateway(cfg, host, readFileSync(cfg.host_key_file));
  const port = (await gateway.listen()).port;
  writeFileSync(join(dir, 'gw_known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(dir, 'gw_host.pub'), 'utf8').trim()}\n`);

  const fx: GatewayFixture = {
    dir, ca, svc, audit, authn, gateway, port, sshd, hostKeyLine, live, policy,
    async clientKey(identity = 'user:alice@example.com', opts = {}) {
      const key = join(dir, `id_${++keyN}`);
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      const r = await svc.issue({ identityId: identity, target: 'gw', ttl: opts.ttl ?? '10m', purpose: 'gateway login', params: { publicKey: readFileSync(`${key}.pub`, 'utf8').trim() } });
      writeFileSync(`${key}-cert.pub`, `${r.credential.certificate as string}\n`);
      return { key, leaseId: r.lease.id, serial: r.lease.handle! };
    },
    ssh(key, user, args, opts = {}) {
      return new Promise((resolve) => {
        const child: ChildProcess = execFile('ssh', [
          '-F', '/dev/null', '-p', String(port), '-i', key, '-o', `CertificateFile=${key}-cert.pub`, '-o', 'IdentitiesOnly=yes',
          '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(dir, 'gw_known_hosts')}`,
          '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR', '-l', user, '127.0.0.1', ...args,
        ], { timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
        });
        if (opts.input !== undefined) child.stdin!.end(opts.input);
        else child.stdin!.end();
      });
    },
    sessionRecords(id) {
      return audit.events.filter((e) => (e.stream as string) === 'session' && (id === undefined || e.payload.session === id)).map((e) => ({ type: e.type, payload: e.payload }));
    },
    async stop() {
      clearInterval(sweep);
      await gateway.close();
      sshd.stop();
      await svc.stop();
    },
  };
  void sshUser;
  return fx;
}
