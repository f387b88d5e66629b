// The SSH gateway with the real OpenSSH client in front and a real sshd behind: certificate login,
// per-channel decisions (exec, forwarding), recording, revocation within 1 s, hostile input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signUserCertificate, parseSshPublicKey } from '../../src/credentials/issuers/ssh/ssh-cert.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { asciicast } from '../../src/gateways/ssh/recorder.ts';
import { skipWithoutOpenSsh, sshUser } from '../credentials/sshd.ts';
import { startGatewayFixture } from './ssh-fixture.ts';
import type { GatewayFixture } from './ssh-fixture.ts';

const skip = skipWithoutOpenSsh();
const user = `${sshUser}@web-1`;

/** Records of one session are numbered 1..N with no gap and end with session.end carrying N. */
function assertComplete(records: { type: string; payload: Record<string, unknown> }[]): void {
  assert.ok(records.length > 0);
  records.forEach((r, i) => assert.equal(r.payload.n, i + 1, `record ${i + 1} (${r.type}) is numbered ${String(r.payload.n)}`));
  assert.equal(records[0]!.type, 'session.start');
  const end = records.at(-1)!;
  assert.equal(end.type, 'session.end');
  assert.equal(end.payload.records, records.length);
}

async function waitFor<T>(f: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SSH gateway', { skip }, () => {
  let fx: GatewayFixture;
  const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-ssh-'));
  before(async () => {
    fx = await startGatewayFixture(join(dir, 'main'));
  });
  after(async () => {
    await fx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const sessionOf = (start: number) => waitFor(() => fx.sessionRecords().slice(start).find((r) => r.type === 'session.start')?.payload.session as string | undefined, 'session.start');
  const endedRecords = async (id: string) => {
    await waitFor(() => fx.sessionRecords(id).some((r) => r.type === 'session.end') || undefined, 'session.end');
    return fx.sessionRecords(id);
  };

  test('a Portcullis certificate logs in through the gateway; exec runs upstream with a fresh leased certificate; exit code and command recorded', async () => {
    fx.policy.current = () => true;
    const { key, leaseId } = await fx.clientKey();
    const before = fx.sessionRecords().length;
    const r = await fx.ssh(key, user, ['echo through-the-gateway; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'through-the-gateway\n');
    const id = await sessionOf(before);
    const recs = await endedRecords(id);
    assertComplete(recs);
    const start = recs[0]!.payload;
    assert.equal(start.identity, 'user:alice@example.com');
    assert.equal(start.client_lease, leaseId);
    const exec = recs.find((x) => x.type === 'ssh.exec')!;
    assert.equal(exec.payload.command, 'echo through-the-gateway; exit 3');
    assert.equal(recs.find((x) => x.type === 'ssh.exit')!.payload.exit_code, 3);
    // The upstream certificate was a lease of its own, issued to alice and revoked when the session ended.
    const upstream = await fx.svc.get(start.upstream_lease as string);
    assert.equal(upstream.identityId, 'user:alice@example.com');
    assert.equal(upstream.target, 'web-1');
    assert.equal(upstream.status, 'revoked');
    // Never the upstream credential in a record.
    const text = JSON.stringify(fx.audit.events);
    assert.doesNotMatch(text, /BEGIN OPENSSH PRIVATE KEY|ssh-ed25519-cert-v01@openssh.com AAAA/);
  });

  test('exec denied by command: the channel is refused, the session goes on, both recorded', async () => {
    fx.policy.current = (req) => !(req.action === 'ssh.exec' && String((req.context.ssh as { command?: string }).command).includes('rm '));
    const { key } = await fx.clientKey();
    const before = fx.sessionRecords().length;
    const denied = await fx.ssh(key, user, ['rm -rf /tmp/nothing-here']);
    assert.notEqual(denied.code, 0);
    const id = await sessionOf(before);
    const recs = await endedRecords(id);
    assertComplete(recs);
    const ch = recs.find((x) => x.type === 'ssh.channel')!.payload;
    assert.equal(ch.allowed, false);
    assert.equal(ch.command, 'rm -rf /tmp/nothing-here');
    assert.equal(recs.some((x) => x.type === 'ssh.exec'), false, 'a denied command is never run');
    // The same certificate, an allowed command: works (the policy decided on the command, not the login).
    const ok = await fx.ssh(key, user, ['echo fine']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'fine\n');
  });

  test('port forwarding is decided: denied → refused and recorded; allowed → bridged to host:port', async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const echoPort = (echo.address() as AddressInfo).port;
    try {
      fx.policy.current = (req) => req.action !== 'ssh.forward_local';
      const { key } = await fx.clientKey();
      const before = fx.sessionRecords().length;
      const denied = await fx.ssh(key, user, ['-W', `127.0.0.1:${echoPort}`], { input: 'ping\n' });
      assert.notEqual(denied.code, 0);
      assert.equal(denied.stdout, '');
      const id = await sessionOf(before);
      const ch = (await endedRecords(id)).find((x) => x.type === 'ssh.channel')!.payload;
      assert.deepEqual([ch.kind, ch.host, ch.port, ch.allowed], ['direct-tcpip', '127.0.0.1', echoPort, false]);

      fx.policy.current = () => true;
      const allowed = await fx.ssh(key, user, ['-W', `127.0.0.1:${echoPort}`], { input: 'ping\n' });
      assert.equal(allowed.stdout, 'ping\n', allowed.stderr);
    } finally {
      echo.close();
    }
  });

  test('an interactive shell is recorded as asciicast v2 (output, resize) and its records are complete', async () => {
    fx.policy.current = () => true;
    const { key } = await fx.clientKey();
    const before = fx.sessionRecords().length;
    // The real ssh client in a pty of its own (script(1)), 100x30, typing two commands.
    const sshCmd = ['ssh', '-tt', '-F', '/dev/null', '-p', String(fx.port), '-i', key, '-o', `CertificateFile=${key}-cert.pub`, '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${join(fx.dir, 'gw_known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'LogLevel=ERROR', '-l', user, '127.0.0.1'].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-q', '-e', '-f', '-c', `stty rows 30 cols 100; exec ${sshCmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm-256color' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor(() => out.length > 0 || undefined, 'the remote prompt', 30_000);
    child.stdin.write('echo recorded-$((6*7)); stty size\n');
    await waitFor(() => out.includes('recorded-42') || undefined, 'command output', 30_000);
    child.stdin.write('exit\n');
    await new Promise((r) => child.on('close', r));
    const id = await sessionOf(before);
    const recs = await endedRecords(id);
    assertComplete(recs);
    const cast = asciicast(recs).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual([cast[0].version, cast[0].width, cast[0].height, cast[0].env.TERM], [2, 100, 30, 'xterm-256color']);
    const output = cast.slice(1).filter((e: unknown[]) => e[1] === 'o').map((e: unknown[]) => e[2]).join('');
    assert.match(output, /recorded-42/);
    assert.match(output, /30 100/, 'the upstream pty has the client size');
    assert.equal(cast.slice(1).some((e: unknown[]) => e[1] === 'i'), false, 'input is not recorded unless opted in');
    for (let i = 2; i < cast.length; i++) assert.ok(cast[i][0] >= cast[i - 1][0], 'event times never go back');
  });

  test('revoking the lease of the login certificate ends a live session within 1 s', async () => {
    fx.policy.current = () => true;
    const { key, leaseId } = await fx.clientKey();
    const before = fx.sessionRecords().length;
    const running = fx.ssh(key, user, ['echo started; sleep 60'], { timeoutMs: 60_000 });
    const id = await sessionOf(before);
    await waitFor(() => fx.sessionRecords(id).some((r) => r.type === 'ssh.exec') || undefined, 'the command to start');
    const t0 = performance.now();
    await fx.svc.revoke({ lease: leaseId }, { by: 'user:secops', reason: 'laptop lost' });
    const r = await running;
    const ms = performance.now() - t0;
    assert.notEqual(r.code, 0);
    assert.ok(ms <= 1000, `session ended ${ms.toFixed(0)} ms after the revocation`);
    const recs = await endedRecords(id);
    assertComplete(recs);
    assert.equal(recs.at(-1)!.payload.reason, 'lease revoked');
  });

  test('wrong, expired and foreign-CA certificates, and a plain key, are refused; the gateway goes on', async () => {
    const { key } = await fx.clientKey();
    const pub = parseSshPublicKey((await import('node:fs')).readFileSync(`${key}.pub`, 'utf8'));
    const now = Math.floor(Date.now() / 1000);
    const spec = { publicKey: pub, serial: 7n, keyId: 'user:alice@example.com', principals: ['portcullis-gateway'], validAfter: now - 60, validBefore: now + 600, criticalOptions: {}, extensions: [] };
    const tryCert = async (line: string) => {
      writeFileSync(`${key}-cert.pub`, `${line}\n`);
      return fx.ssh(key, user, ['echo should-not-run']);
    };
    const foreign = await tryCert(signUserCertificate(generateSshCa().privateKey, spec).line);
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /Permission denied/);
    const expired = await tryCert(signUserCertificate(fx.ca.privateKey, { ...spec, validAfter: now - 7200, validBefore: now - 3600 }).line);
    assert.match(expired.stderr, /Permission denied/);
    // Signed by the right CA, but no lease has that serial.
    const unknown = await tryCert(signUserCertificate(fx.ca.privateKey, spec).line);
    assert.match(unknown.stderr, /Permission denied/);
    // A host certificate from the web-1 target (not the gateway's client target).
    const hostCert = await fx.svc.issue({ identityId: 'user:alice@example.com', target: 'web-1', purpose: 'direct', params: { publicKey: pub.line } });
    const wrongTarget = await tryCert(hostCert.credential.certificate as string);
    assert.match(wrongTarget.stderr, /Permission denied/);
    const reasons = fx.authn.map((a) => a.reason);
    for (const r of ['untrusted_ca', 'expired', 'revoked', 'wrong_lease']) assert.ok(reasons.includes(r), `${r} in ${reasons.join(',')}`);
    // Positive control on the same gateway.
    const good = await fx.clientKey();
    const ok = await fx.ssh(good.key, user, ['echo alive']);
    assert.equal(ok.stdout, 'alive\n', ok.stderr);
  });

  test('SSH protocol garbage is answered by closing; the gateway never crashes', async () => {
    const payloads = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), Buffer.alloc(64, 0x41)]),
      Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0, 0, 0, 12, 4, 20]), Buffer.alloc(10, 0)]),
      Buffer.alloc(70_000, 0x53),
    ];
    for (const p of payloads) {
      await new Promise<void>((resolve) => {
        const s = connect(fx.port, '127.0.0.1', () => s.write(p));
        s.on('data', () => {});
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.setTimeout(15_000, () => (s.destroy(), resolve()));
      });
    }
    const good = await fx.clientKey();
    const ok = await fx.ssh(good.key, user, ['echo still-here']);
    assert.equal(ok.stdout, 'still-here\n', ok.stderr);
  });
});

describe('SSH gateway: upstream host key pinning', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-ssh-pin-'));
  let fx: GatewayFixture;
  before(async () => {
    // Pinned: some other host's key. The real sshd's key must be refused.
    fx = await startGatewayFixture(dir, { upstreamHostKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl other-host'] });
  });
  after(async () => {
    await fx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an upstream host key that does not match the pinned one is refused; nothing runs', async () => {
    const { key } = await fx.clientKey();
    const before = fx.sessionRecords().length;
    const marker = join(dir, 'ran');
    const r = await fx.ssh(key, user, [`touch ${marker}`]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /host key|HOST IDENTIFICATION/i);
    assert.equal((await import('node:fs')).existsSync(marker), false);
    const id = (fx.sessionRecords().slice(before).find((x) => x.type === 'session.start')!.payload.session) as string;
    await waitFor(() => fx.sessionRecords(id).some((x) => x.type === 'session.end') || undefined, 'session.end');
    assert.equal(fx.sessionRecords(id).find((x) => x.type === 'ssh.exit')!.payload.upstream_error, 'host key verification failed');
  });
});
