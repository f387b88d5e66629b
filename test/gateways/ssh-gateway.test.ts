// The SSH gateway with the real OpenSSH client in front and a real sshd behind: certificate login,
// per-channel decisions (exec, forwarding), recording, revocation within 1 s (on the server's clock), hostile input.
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signUserCertificate, parseSshPublicKey } from '../../src/credentials/issuers/ssh/ssh-cert.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { asciicast } from '../../src/gateways/ssh/recorder.ts';
import { skipWithoutOpenSsh, sshUser } from '../credentials/sshd.ts';
import { freePort } from '../credentials/helpers.ts';
import { DatabaseSync } from 'node:sqlite';
import { WORKLOAD, execSsh, interactiveSsh, run, startGatewayFixture } from './ssh-fixture.ts';
import type { GatewayFixture, SessionRecord } from './ssh-fixture.ts';

const skip = skipWithoutOpenSsh();
// The gateway runs in this process: an exception escaping it (e.g. out of ssh2's socket handlers
// when a client leaves mid-decision) would crash a real server. The last test checks for none.
const escaped: Error[] = [];
process.on('uncaughtException', (e) => escaped.push(e));
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');

/** The real CLI in a child process (asynchronous: the server runs in this process). */
function cli(fx: GatewayFixture, args: string[], token = fx.token): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, PORTCULLIS_ADDR: fx.s.url, PORTCULLIS_TOKEN: token, PORTCULLIS_HOME: join(fx.dir, 'home') }, encoding: 'utf8', timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
  });
}

const policies = (echoPort: number, remotePort = 0) => `
permit (principal == Workload::"${WORKLOAD}", action == Action::"credential.issue", resource == Host::"web-1");
permit (principal == Workload::"${WORKLOAD}", action in [Action::"ssh.login", Action::"ssh.shell", Action::"ssh.subsystem"], resource == Host::"web-1");
permit (principal == Workload::"${WORKLOAD}", action == Action::"ssh.exec", resource == Host::"web-1")
  unless { context has ssh && context.ssh has command && context.ssh.command like "*rm -rf*" };
permit (principal == Workload::"${WORKLOAD}", action == Action::"ssh.forward_local", resource == Host::"web-1")
  when { context has ssh && context.ssh has port && context.ssh.port == ${echoPort} };
permit (principal == Workload::"${WORKLOAD}", action == Action::"ssh.forward_remote", resource == Host::"web-1")
  when { context has ssh && context.ssh has port && context.ssh.port == ${remotePort} };
permit (principal == Workload::"${WORKLOAD}", action == Action::"ssh.agent_forward", resource == Host::"web-1")
  when { context.authn.method == "ssh-certificate" };
`;

/** Records of one session are numbered 1..N with no gap and end with session.end carrying N. */
function assertComplete(records: SessionRecord[]): void {
  assert.ok(records.length > 0);
  records.forEach((r, i) => assert.equal(r.payload.n, i + 1, `record ${i + 1} (${r.type}) is numbered ${String(r.payload.n)}`));
  assert.equal(records[0]!.type, 'session.start');
  const end = records.at(-1)!;
  assert.equal(end.type, 'session.end');
  assert.equal(end.payload.records, records.length);
}

async function waitFor<T>(f: () => Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('SSH gateway (real OpenSSH client and sshd, real server)', { skip }, () => {
  let fx: GatewayFixture;
  const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-ssh-'));
  const echo = createServer((s) => s.pipe(s));
  let echoPort = 0;
  let remotePort = 0;
  before(async () => {
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoPort = (echo.address() as AddressInfo).port;
    remotePort = await freePort();
    fx = await startGatewayFixture(join(dir, 'main'), { policies: policies(echoPort, remotePort) });
  });
  after(async () => {
    echo.close();
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The id of the first session started after `seq`. */
  const sessionAfter = (seq: number) => waitFor(async () => (await fx.records()).find((r) => r.seq > seq && r.type === 'session.start')?.payload.session as string | undefined, 'session.start');
  const lastSeq = async () => (await fx.records()).at(-1)?.seq ?? 0;
  const ended = async (id: string) => {
    await waitFor(async () => (await fx.records(id)).some((r) => r.type === 'session.end'), 'session.end');
    return fx.records(id);
  };

  test('a Portcullis certificate logs in; exec runs upstream with a fresh leased certificate; exit code and command recorded; the lease is revoked at the end', async () => {
    const { key, leaseId } = await fx.clientKey();
    const seq = await lastSeq();
    const r = await fx.ssh(key, ['echo through-the-gateway; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'through-the-gateway\n');
    const id = await sessionAfter(seq);
    const recs = await ended(id);
    assertComplete(recs);
    const start = recs[0]!.payload;
    assert.equal(start.identity, WORKLOAD);
    assert.equal(start.proof_lease, leaseId);
    assert.deepEqual(start.authn, { method: 'ssh-certificate', trust: 'portcullis-ssh-ca' });
    assert.equal(recs.find((x) => x.type === 'ssh.exec')!.payload.command, 'echo through-the-gateway; exit 3');
    assert.equal(recs.find((x) => x.type === 'ssh.exit')!.payload.exit_code, 3);
    // The upstream certificate was a lease of its own, for the workload, ended with the session.
    const leases = await fx.s.call('GET', '/v1/leases?mine=true', undefined, fx.token);
    const upstream = (leases.body.leases as { id: string; status: string; target: string }[]).find((l) => l.id === start.lease);
    assert.ok(upstream, 'the upstream lease is the workload\'s own');
    assert.equal(upstream.target, 'web-1');
    await waitFor(async () => ((await fx.s.call('GET', '/v1/leases?mine=true', undefined, fx.token)).body.leases as { id: string; status: string }[]).find((l) => l.id === upstream.id)?.status === 'revoked', 'the upstream lease revoked');
    // Input sent right behind the request (before the decision answers) reaches the command whole.
    const piped = await fx.ssh(key, ['cat'], { input: 'piped-through\n'.repeat(1000) });
    assert.equal(piped.stdout, 'piped-through\n'.repeat(1000), piped.stderr);
    // Never the upstream key or certificate in a record.
    assert.doesNotMatch(JSON.stringify(await fx.records()), /OPENSSH PRIVATE KEY|-cert-v01@openssh\.com AAAA/);
  });

  test('a session token as password logs in too (what portcullis ssh does); a wrong one does not', async () => {
    const ok = await fx.sshWithToken(fx.token, ['echo token-login']);
    assert.equal(ok.stdout, 'token-login\n', ok.stderr);
    const bad = await fx.sshWithToken(`${fx.token.slice(0, -4)}AAAA`, ['echo no']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Permission denied/);
  });

  test('exec denied by command: refused and recorded, never run; the next allowed command works', async () => {
    const { key } = await fx.clientKey();
    const marker = join(dir, 'not-removed');
    const seq = await lastSeq();
    const denied = await fx.ssh(key, [`rm -rf ${marker}`]);
    assert.notEqual(denied.code, 0);
    const id = await sessionAfter(seq);
    const recs = await ended(id);
    assertComplete(recs);
    const ch = recs.find((x) => x.type === 'ssh.channel')!;
    assert.equal(ch.payload.allowed, false);
    assert.equal(ch.payload.command, `rm -rf ${marker}`);
    assert.ok(String(ch.payload.decision_id).length > 0);
    assert.equal(recs.some((x) => x.type === 'ssh.exec'), false, 'a denied command is never run');
    const ok = await fx.ssh(key, ['echo fine']);
    assert.equal(ok.stdout, 'fine\n', ok.stderr);
  });

  test('port forwarding is decided on host:port: denied → refused and recorded; the allowed port is bridged', async () => {
    const { key } = await fx.clientKey();
    const seq = await lastSeq();
    const denied = await fx.ssh(key, ['-W', `127.0.0.1:${echoPort + 1}`], { input: 'ping\n' });
    assert.notEqual(denied.code, 0);
    assert.equal(denied.stdout, '');
    const ch = (await ended(await sessionAfter(seq))).find((x) => x.type === 'ssh.channel')!.payload;
    assert.deepEqual([ch.channel, ch.kind, ch.host, ch.port, ch.allowed], [1, 'direct-tcpip', '127.0.0.1', echoPort + 1, false]);
    const allowed = await fx.ssh(key, ['-W', `127.0.0.1:${echoPort}`], { input: 'ping\n' });
    assert.equal(allowed.stdout, 'ping\n', allowed.stderr);
  });

  test('an interactive shell is recorded as asciicast v2 (output, size) and its records are complete and verify', async () => {
    const { key } = await fx.clientKey();
    const seq = await lastSeq();
    const child = interactiveSsh(fx, key, { cols: 100, rows: 30 });
    await waitFor(async () => child.output().length > 0, 'the remote prompt', 30_000);
    child.stdin!.write('echo recorded-$((6*7)); stty size\n');
    await waitFor(async () => child.output().includes('recorded-42'), 'command output', 30_000);
    child.stdin!.write('exit\n');
    await new Promise((r) => child.on('close', r));
    const recs = await ended(await sessionAfter(seq));
    assertComplete(recs);
    const cast = asciicast(recs).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual([cast[0].version, cast[0].width, cast[0].height, cast[0].env.TERM], [2, 100, 30, 'xterm-256color']);
    const output = cast.slice(1).filter((e: unknown[]) => e[1] === 'o').map((e: unknown[]) => e[2]).join('');
    assert.match(output, /recorded-42/);
    assert.match(output, /30 100/, 'the upstream pty has the client\'s size');
    assert.equal(cast.slice(1).some((e: unknown[]) => e[1] === 'i'), false, 'input is not recorded unless opted in');
    for (let i = 2; i < cast.length; i++) assert.ok(cast[i][0] >= cast[i - 1][0], 'event times never go back');
    // The CLI: the session verifies (stream + records 1..N) and `sessions play --cast` gives the same cast.
    const id = recs[0]!.payload.session as string;
    // Reading a recording is a session.read decision (the admin here; the workload has no such policy).
    const admin = await fx.s.admin();
    const verified = await cli(fx, ['sessions', 'verify', id], admin);
    assert.equal(verified.code, 0, verified.stderr + verified.stdout);
    assert.match(verified.stdout, new RegExp(`ok: ${recs.length} records`));
    const played = await cli(fx, ['sessions', 'play', id, '--cast'], admin);
    assert.equal(played.code, 0, played.stderr);
    assert.equal(played.stdout, asciicast(recs));
    const replay = await cli(fx, ['sessions', 'play', id, '--speed', '100'], admin);
    assert.match(replay.stdout, /recorded-42/);
  });

  test('a window change reaches the upstream pty and is recorded as an asciicast resize event', async () => {
    // ssh2's client (password = the session token) can send window-change on demand.
    const seq = await lastSeq();
    const conn = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', () => resolve());
      conn.once('error', reject);
      conn.connect({ host: '127.0.0.1', port: fx.port, username: sshUser, password: fx.token, hostVerifier: (key: Buffer) => key.equals(Buffer.from(readFileSync(join(fx.dir, 'gw_host.pub'), 'utf8').split(' ')[1]!, 'base64')) });
    });
    try {
      const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) => conn.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, s) => (err ? reject(err) : resolve(s))));
      let out = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(async () => out.length > 0, 'the prompt', 30_000);
      stream.write('stty size; echo first-$((1+1))\n');
      await waitFor(async () => out.includes('first-2'), 'the first size', 30_000);
      assert.match(out, /24 80/);
      stream.setWindow(40, 132, 0, 0);
      // Applied asynchronously (stty on the upstream client's pty): ask until the shell sees it.
      await waitFor(async () => {
        stream.write('stty size\n');
        await new Promise((r) => setTimeout(r, 200));
        return /40 132/.test(out);
      }, 'the new size upstream', 30_000);
      stream.write('exit\n');
      await new Promise((r) => stream.once('close', r));
    } finally {
      conn.end();
    }
    const recs = await ended(await sessionAfter(seq));
    const cast = asciicast(recs).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(cast.slice(1).filter((e: unknown[]) => e[1] === 'r').map((e: unknown[]) => e[2]), ['132x40']);
  });

  test('portcullis ssh TARGET: the CLI logs in through the gateway with the session token (never on a command line), the gateway host key pinned', async () => {
    // No known_hosts of our own: the CLI pins the gateway's host key from GET /v1/gateways.
    const gws = await fx.s.call('GET', '/v1/gateways', undefined, fx.token);
    assert.equal((gws.body.gateways as { host_key?: string }[])[0]!.host_key, readFileSync(join(fx.dir, 'gw_host.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' '));
    const r = await cli(fx, ['ssh', 'web-1', '--login', sshUser, '--', 'echo via-cli']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'via-cli\n');
    const recs = await fx.records();
    const start = recs.filter((x) => x.type === 'session.start').at(-1)!;
    assert.equal((start.payload.authn as { method: string }).method, 'oidc', 'logged in with the session token (its method), not a certificate');
  });

  /**
   * The interval from `cause` (an admin record) to the session's `session.end`, on the server's own
   * clock (both records are the server's; the test process's timing is not measured): the clock
   * runs with real time while `during` runs, and the end must cite the cause.
   */
  const endedAfter = async (during: () => Promise<{ id: string; cause: (start: SessionRecord) => Promise<SessionRecord | undefined>; reason: string | RegExp }>) => {
    fx.clock.run();
    let out: { recs: SessionRecord[]; ms: number };
    try {
      const { id, cause, reason } = await during();
      const recs = await ended(id);
      const caused = await waitFor(() => cause(recs[0]!), 'the record of what ended the session');
      const end = recs.at(-1)!;
      const seen = () => `session.end cites what ended it; the records: ${JSON.stringify(recs.map((r) => ({ type: r.type, n: r.payload.n, reason: r.payload.reason })))}`;
      if (typeof reason === 'string') assert.equal(end.payload.reason, reason, seen());
      else assert.match(String(end.payload.reason), reason, seen());
      out = { recs, ms: Date.parse(end.time) - Date.parse(caused.time) };
    } finally {
      fx.clock.pause();
    }
    return out;
  };

  test('revoking the lease of the login certificate ends a live session within 1 s', async (t) => {
    const { key, leaseId } = await fx.clientKey();
    const seq = await lastSeq();
    const { recs, ms } = await endedAfter(async () => {
      const running = fx.ssh(key, ['echo started; sleep 60'], { timeoutMs: 60_000 });
      const id = await sessionAfter(seq);
      await waitFor(async () => (await fx.records(id)).some((r) => r.type === 'ssh.exec'), 'the command to start');
      await fx.revoke({ lease: leaseId }, 'laptop lost');
      const r = await running;
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /portcullis: session ended/);
      return { id, cause: async () => (await fx.adminRecords('credential.revoked')).find((x) => x.payload.lease === leaseId), reason: `lease ${leaseId} ended` };
    });
    t.diagnostic(`session.end was recorded ${ms} ms after credential.revoked (server clock)`);
    assert.ok(ms <= 1000, `session.end recorded ${ms} ms after the revocation`);
    assertComplete(recs);
    // A new login with the revoked certificate is refused.
    const again = await fx.ssh(key, ['echo no']);
    assert.match(again.stderr, /Permission denied/);
  });

  test('POST /v1/sessions/{id}/terminate ends one\'s own live SSH session within 1 s', async (t) => {
    const { key } = await fx.clientKey();
    const seq = await lastSeq();
    const { recs, ms } = await endedAfter(async () => {
      const running = fx.ssh(key, ['echo started; sleep 60'], { timeoutMs: 60_000 });
      const id = await sessionAfter(seq);
      await waitFor(async () => (await fx.records(id)).some((r) => r.type === 'ssh.exec'), 'the command to start');
      const res = await fx.s.call('POST', `/v1/sessions/${id}/terminate`, { reason: 'enough' }, fx.token);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const r = await running;
      assert.match(r.stderr, /portcullis: session ended: terminated by/);
      // The record names the gateway session and its lease (payload.session is the caller's login session).
      return { id, cause: async (start) => (await fx.adminRecords('gateway_session.terminated')).find((x) => x.payload.gateway_session === id && x.payload.lease === start.payload.lease), reason: `terminated by ${WORKLOAD}: enough` };
    });
    t.diagnostic(`session.end was recorded ${ms} ms after gateway_session.terminated (server clock)`);
    assert.ok(ms <= 1000, `session.end recorded ${ms} ms after terminate`);
    assertComplete(recs);
  });

  test('foreign-CA certificates, plain keys and a certificate without proof of its key are refused (audited); SSH protocol garbage is closed; the gateway goes on', async () => {
    const { key } = await fx.clientKey();
    const pub = parseSshPublicKey(readFileSync(`${key}.pub`, 'utf8'));
    const now = Math.floor(Date.now() / 1000);
    writeFileSync(`${key}-cert.pub`, `${signUserCertificate(generateSshCa().privateKey, { publicKey: pub, serial: 7n, keyId: WORKLOAD, principals: ['deploy'], validAfter: now - 60, validBefore: now + 600, criticalOptions: {}, extensions: [] }).line}\n`);
    const foreign = await fx.ssh(key, ['echo should-not-run']);
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /Permission denied/);
    rmSync(`${key}-cert.pub`); // the bare key: no certificate
    const plain = await fx.ssh(key, ['echo should-not-run']);
    assert.match(plain.stderr, /Permission denied/);
    // A valid, active certificate without the proof of its key (ssh2's client signs certificates
    // in a form OpenSSH and the gateway refuse): refused, and an authn.failure is recorded.
    const held = await fx.clientKey();
    const priv = ssh2.utils.parseKey(readFileSync(held.key)) as ssh2.ParsedKey;
    const certBlob = Buffer.from(readFileSync(`${held.key}-cert.pub`, 'utf8').split(' ')[1]!, 'base64');
    const lookAlike = Object.assign(Object.create(Object.getPrototypeOf(priv) as object) as ssh2.ParsedKey, priv, { type: 'ssh-ed25519-cert-v01@openssh.com', getPublicSSH: () => certBlob });
    for (const sym of Object.getOwnPropertySymbols(priv)) (lookAlike as unknown as Record<symbol, unknown>)[sym] = (priv as unknown as Record<symbol, unknown>)[sym];
    const noProof = await new Promise<string>((resolve) => {
      const c = new ssh2.Client();
      c.on('ready', () => (c.end(), resolve('logged in')));
      c.on('error', (e) => resolve(e.message));
      let tried = false;
      c.connect({
        host: '127.0.0.1', port: fx.port, username: sshUser, hostVerifier: () => true,
        authHandler: (_methods, _partial, next) => {
          if (tried) return next(false as unknown as ssh2.AuthenticationType);
          tried = true;
          next({ type: 'publickey', username: sshUser, key: lookAlike } as unknown as ssh2.AuthenticationType);
        },
      });
    });
    assert.match(noProof, /authentication methods failed/);
    const failures = await fx.s.call('GET', '/v1/audit/authn?type=authn.failure&limit=1000', undefined, await fx.s.admin());
    assert.ok((failures.body.events as { payload: Record<string, unknown> }[]).some((e) => e.payload.proof === 'ssh-certificate' && e.payload.reason === 'no_proof_of_possession'), 'the refused proof is audited');
    const payloads = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), Buffer.alloc(64, 0x41)]),
      Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0, 0, 0, 12, 4, 20]), Buffer.alloc(10, 0)]),
      Buffer.alloc(70_000, 0x53),
    ];
    for (const p of payloads) {
      await new Promise<void>((resolve) => {
        const sock = connect(fx.port, '127.0.0.1', () => sock.write(p));
        sock.on('data', () => {});
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.setTimeout(15_000, () => (sock.destroy(), resolve()));
      });
    }
    const good = await fx.clientKey();
    const ok = await fx.ssh(good.key, ['echo still-here']);
    assert.equal(ok.stdout, 'still-here\n', ok.stderr);
  });

  test('file transfers (sftp, scp) are decided and recorded as ssh.file events', async () => {
    const { key } = await fx.clientKey();
    const local = join(dir, 'upload.txt');
    const remote = join(dir, 'uploaded.txt');
    const back = join(dir, 'downloaded.txt');
    writeFileSync(local, 'through the gateway\n');
    const batch = join(dir, 'batch');
    writeFileSync(batch, `put ${local} ${remote}\nget ${remote} ${back}\nrm ${remote}\n`);
    const seq = await lastSeq();
    const sftp = await run('sftp', [...fx.clientArgs(key), '-P', String(fx.port), '-b', batch, '127.0.0.1']).catch((e: { stderr: string }) => ({ stdout: '', stderr: e.stderr }));
    assert.equal(readFileSync(back, 'utf8'), 'through the gateway\n', sftp.stderr);
    assert.equal(existsSync(remote), false, 'the rm went through');
    const recs = await ended(await sessionAfter(seq));
    assertComplete(recs);
    assert.deepEqual(recs.find((r) => r.type === 'ssh.channel')!.payload.subsystem, 'sftp');
    const files = recs.filter((r) => r.type === 'ssh.file').map((r) => [r.payload.op, r.payload.path, r.payload.mode ?? null]);
    assert.deepEqual(files.filter((f) => f[1] === remote), [['open', remote, 'write'], ['open', remote, 'read'], ['remove', remote, null]]);

    const seq2 = await lastSeq();
    await run('scp', ['-O', ...fx.clientArgs(key), '-P', String(fx.port), local, `127.0.0.1:${remote}`]);
    assert.equal(readFileSync(remote, 'utf8'), 'through the gateway\n');
    const recs2 = await ended(await sessionAfter(seq2));
    assert.deepEqual(recs2.filter((r) => r.type === 'ssh.file').map((r) => [r.payload.protocol, r.payload.direction, r.payload.path]), [['scp', 'upload', remote]]);
  });

  test('remote forwarding is decided on host:port: denied → refused and recorded; the allowed port is relayed back through the gateway', async () => {
    const { key } = await fx.clientKey();
    const seq = await lastSeq();
    const r = await fx.ssh(key, ['-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:0:127.0.0.1:${echoPort}`, 'echo should-not-run']);
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /should-not-run/);
    const recs = await ended(await sessionAfter(seq));
    const ch = recs.find((x) => x.type === 'ssh.channel')!.payload;
    assert.deepEqual([ch.kind, ch.action, ch.allowed], ['tcpip-forward', 'ssh.forward_remote', false]);

    // The allowed port: the host listens on it and each connection comes back through the gateway.
    const fwd = spawn('ssh', [...fx.clientArgs(key), '-p', String(fx.port), '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${remotePort}:127.0.0.1:${echoPort}`, '127.0.0.1'], { stdio: 'ignore' });
    try {
      const reply = await waitFor(async () => new Promise<string | undefined>((resolve) => {
        const sock = connect(remotePort, '127.0.0.1', () => sock.write('pong\n'));
        let got = '';
        sock.on('data', (d) => {
          got += d;
          if (got.includes('\n')) {
            sock.destroy();
            resolve(got);
          }
        });
        sock.on('error', () => resolve(undefined));
        sock.setTimeout(3000, () => (sock.destroy(), resolve(undefined)));
      }), 'the remote forward', 30_000);
      assert.equal(reply, 'pong\n');
    } finally {
      fwd.kill();
    }
  });

  test('ssh -J gateway target: the jump lands on the gateway again as a session of its own (logged in, each channel decided and recorded), never a raw pipe to the host', async () => {
    const { key } = await fx.clientKey();
    const gwKey = readFileSync(join(fx.dir, 'gw_host.pub'), 'utf8').trim();
    // The client pins the gateway's key for the gateway and for the target name (the gateway answers for it).
    writeFileSync(join(dir, 'jump_known_hosts'), `[127.0.0.1]:${fx.port} ${gwKey}\nweb-1 ${gwKey}\n`);
    const config = join(dir, 'jump_config');
    writeFileSync(config, ['Host gw', '  HostName 127.0.0.1', `  Port ${fx.port}`, 'Host *', `  User ${sshUser}`, `  IdentityFile ${key}`, `  CertificateFile ${key}-cert.pub`,
      '  IdentitiesOnly yes', '  IdentityAgent none', '  BatchMode yes', `  UserKnownHostsFile ${join(dir, 'jump_known_hosts')}`, '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes', '  ConnectTimeout 10', '  LogLevel ERROR', ''].join('\n'));
    const seq = await lastSeq();
    const r = await execSsh(['-F', config, '-J', 'gw', 'web-1', 'echo jumped; exit 4']);
    assert.equal(r.stdout, 'jumped\n', r.stderr);
    assert.equal(r.code, 4);
    const starts = await waitFor(async () => {
      const s = (await fx.records()).filter((x) => x.seq > seq && x.type === 'session.start');
      return s.length === 2 ? s : undefined;
    }, 'two sessions');
    const outer = starts.find((x) => x.payload.via === undefined)!;
    const inner = starts.find((x) => x.payload.via !== undefined)!;
    assert.equal(inner.payload.via, outer.payload.session, 'the inner session names the session it came through');
    assert.equal(inner.payload.source_ip, '127.0.0.1', 'from the client\'s address');
    const outerRecs = await ended(outer.payload.session as string);
    assertComplete(outerRecs);
    assert.deepEqual(outerRecs.filter((x) => x.type === 'ssh.jump').map((x) => [x.payload.host, x.payload.port]), [['web-1', 22]]);
    assert.equal(outerRecs.some((x) => x.type === 'ssh.channel'), false, 'a jump is no port forward');
    const innerRecs = await ended(inner.payload.session as string);
    assertComplete(innerRecs);
    assert.equal(innerRecs.find((x) => x.type === 'ssh.exec')!.payload.command, 'echo jumped; exit 4');
    assert.equal(innerRecs.find((x) => x.type === 'ssh.exit')!.payload.exit_code, 4);
    // Through the jump too, each command is decided.
    const marker = join(dir, 'jump-not-removed');
    writeFileSync(marker, '');
    const denied = await execSsh(['-F', config, '-J', 'gw', 'web-1', `rm -rf ${marker}`]);
    assert.notEqual(denied.code, 0);
    assert.equal(existsSync(marker), true);
    // The host's own sshd address is the target as well: `-W` to it reaches the gateway, not sshd.
    const raw = await fx.ssh(key, ['-W', `127.0.0.1:${fx.sshd.port}`], { input: 'SSH-2.0-probe\r\n', timeoutMs: 15_000 });
    assert.match(raw.stdout, /^SSH-2\.0-Portcullis/, raw.stderr);
  });

  test('agent forwarding is decided per channel: allowed → relayed to the client\'s agent (each use recorded); denied → no agent upstream', async () => {
    const agentSock = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    try {
      await waitFor(async () => existsSync(agentSock), 'ssh-agent');
      const held = join(dir, 'agent_key');
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'held-by-the-client-agent', '-f', held]);
      await run('ssh-add', ['-q', held], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
      // The policy allows it for certificate logins only.
      const { key } = await fx.clientKey();
      const seq = await lastSeq();
      // (OpenSSH asks for forwarding only when SSH_AUTH_SOCK reaches an agent.)
      const withAgent = { PATH: process.env.PATH ?? '/usr/bin:/bin', SSH_AUTH_SOCK: agentSock };
      const r = await fx.ssh(key, ['-A', 'ssh-add -l'], { env: withAgent });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /held-by-the-client-agent/);
      const recs = await ended(await sessionAfter(seq));
      assertComplete(recs);
      const ch = recs.find((x) => x.type === 'ssh.channel' && x.payload.kind === 'agent')!.payload;
      assert.deepEqual([ch.action, ch.allowed], ['ssh.agent_forward', true]);
      assert.ok(recs.some((x) => x.type === 'ssh.agent'), 'the agent\'s use is recorded');
      const seq2 = await lastSeq();
      const denied = await fx.sshWithToken(fx.token, ['-A', 'ssh-add -l'], withAgent);
      assert.equal(denied.code, 2, `no agent upstream: ${denied.stdout}${denied.stderr}`);
      assert.doesNotMatch(denied.stdout, /held-by-the-client-agent/);
      const recs2 = await ended(await sessionAfter(seq2));
      const ch2 = recs2.find((x) => x.type === 'ssh.channel' && x.payload.kind === 'agent')!.payload;
      assert.deepEqual([ch2.action, ch2.allowed], ['ssh.agent_forward', false]);
      assert.equal(recs2.some((x) => x.type === 'ssh.agent'), false);
    } finally {
      agent.kill();
    }
  });

  test('a session\'s recording verifies; an edited record makes `sessions verify` fail (next to last: edits the stored record)', async () => {
    const recs = await fx.records();
    const exec = recs.filter((x) => x.type === 'ssh.exec').at(-1)!;
    const id = exec.payload.session as string;
    const admin = await fx.s.admin();
    const ok = await cli(fx, ['sessions', 'verify', id], admin);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    // The command the session ran, rewritten in the stored record (the store of the run).
    const edit = "UPDATE audit_events SET payload = replace(payload, '\"command\":\"', '\"command\":\"harmless; ') WHERE stream = 'session' AND seq = ";
    if (fx.s.storeUrl !== undefined) {
      const pg = new (await import('pg')).default.Client({ connectionString: fx.s.storeUrl });
      await pg.connect();
      try {
        assert.equal((await pg.query(`${edit}$1`, [exec.seq])).rowCount, 1);
      } finally {
        await pg.end();
      }
    } else {
      const db = new DatabaseSync(join(fx.s.dir, 'data', 'audit.db'));
      try {
        assert.equal(db.prepare(`${edit}?`).run(exec.seq).changes, 1);
      } finally {
        db.close();
      }
    }
    const bad = await cli(fx, ['sessions', 'verify', id], admin);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /FAILED/);
  });

  test('clients leaving while their request is being decided: nothing escapes the gateway, each session ends (and none did in any test before)', async () => {
    const seq = await lastSeq();
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve) => {
        const conn = new ssh2.Client();
        conn.on('ready', () => conn.exec('echo never', () => {}));
        conn.on('error', () => {});
        conn.on('close', () => resolve());
        // Gone right behind its exec request: the gateway is still deciding it.
        conn.connect({ host: '127.0.0.1', port: fx.port, username: sshUser, password: fx.token, hostVerifier: () => true,
          debug: (m: string) => void (/Sending CHANNEL_REQUEST \(r:\d+, exec/.test(m) && setImmediate(() => conn.end())) });
      });
    }
    await waitFor(async () => {
      const recs = (await fx.records()).filter((x) => x.seq > seq);
      return recs.filter((x) => x.type === 'session.end').length === 3 && recs.filter((x) => x.type === 'session.start').length === 3;
    }, 'the three sessions ended');
    assert.deepEqual(escaped.map((e) => e.stack), []);
  });

  test('an expired certificate is refused (last: moves the server clock)', async () => {
    const { key } = await fx.clientKey();
    fx.s.clock.advance(2 * 3_600_000);
    const r = await fx.ssh(key, ['echo should-not-run']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Permission denied/);
  });
});

describe('SSH gateway: the upstream host key is pinned', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-ssh-pin-'));
  let fx: GatewayFixture;
  before(async () => {
    // Pinned: another host's key. The real sshd's key must be refused.
    fx = await startGatewayFixture(dir, { policies: policies(1), hostKeys: () => ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl other-host'] });
  });
  after(async () => {
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a host key that does not match the pinned one is refused; nothing runs upstream', async () => {
    const { key } = await fx.clientKey();
    const marker = join(dir, 'ran');
    const r = await fx.ssh(key, [`touch ${marker}`]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /host key|HOST IDENTIFICATION/i);
    assert.equal(existsSync(marker), false);
    const recs = await fx.records();
    assert.equal(recs.find((x) => x.type === 'ssh.exit')!.payload.upstream_error, 'host key verification failed');
  });
});

describe('SSH gateway: input recording is opt-in (record_input: true)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-ssh-input-'));
  let fx: GatewayFixture;
  before(async () => {
    fx = await startGatewayFixture(dir, { policies: policies(1), recordInput: true });
  });
  after(async () => {
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('keystrokes are recorded as "i" events next to the output', async () => {
    const { key } = await fx.clientKey();
    const child = interactiveSsh(fx, key, { cols: 80, rows: 24 });
    await waitFor(async () => child.output().length > 0, 'the remote prompt', 30_000);
    child.stdin!.write('echo typed-$((3*3))\n');
    await waitFor(async () => child.output().includes('typed-9'), 'command output', 30_000);
    child.stdin!.write('exit\n');
    await new Promise((r) => child.on('close', r));
    const id = (await fx.records()).find((r) => r.type === 'session.start')!.payload.session as string;
    await waitFor(async () => (await fx.records(id)).some((r) => r.type === 'session.end'), 'session.end');
    const cast = asciicast(await fx.records(id)).trim().split('\n').map((l) => JSON.parse(l));
    const input = cast.slice(1).filter((e: unknown[]) => e[1] === 'i').map((e: unknown[]) => e[2]).join('');
    assert.match(input, /echo typed-\$\(\(3\*3\)\)/);
  });
});
