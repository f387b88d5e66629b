// The SSH gateway's parsers on hostile input: user certificates (cert.ts), scp commands and the SFTP
// request stream (files.ts), asciicast chunks (recorder.ts), the upstream key file (upstream.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSshPublicKey, signUserCertificate } from '../../src/credentials/issuers/ssh/ssh-cert.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { CertificateRefused, sourceAllowed, verifyPossession, verifyUserCertificate } from '../../src/gateways/ssh/cert.ts';
import { SftpWatcher, scpTransfer } from '../../src/gateways/ssh/files.ts';
import type { SftpEvent } from '../../src/gateways/ssh/files.ts';
import { CastRecorder, asciicast } from '../../src/gateways/ssh/recorder.ts';
import { freshKey } from '../../src/gateways/ssh/upstream.ts';
import { castOf, pickGateway } from '../../src/cli/commands/ssh.ts';
import { loadGateways } from '../../src/gateways/registry.ts';

const ca = generateSshCa();
const caBlob = Buffer.from(ca.publicKeyLine.split(' ')[1]!, 'base64');
const now = Math.floor(Date.now() / 1000);

function userKey() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), x]);
  return { privateKey, line: `ssh-ed25519 ${blob.toString('base64')}` };
}

function cert(o: Partial<Parameters<typeof signUserCertificate>[1]> = {}, signer = ca.privateKey) {
  const k = userKey();
  const c = signUserCertificate(signer, {
    publicKey: parseSshPublicKey(k.line), serial: 42n, keyId: 'user:alice', principals: ['deploy'], validAfter: now - 60, validBefore: now + 600,
    criticalOptions: {}, extensions: ['permit-pty'], ...o,
  });
  return { blob: c.blob, key: k.privateKey };
}

const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof CertificateRefused, `expected CertificateRefused, got ${String(e)}`);
    return e.reason;
  }
  return 'accepted';
};

describe('user certificates (cert.ts)', () => {
  test('a valid certificate verifies; the CA, validity, type, critical options and possession are checked', () => {
    const c = cert();
    const v = verifyUserCertificate(c.blob, caBlob, now);
    assert.deepEqual([v.serial, v.keyId, v.principals], ['42', 'user:alice', ['deploy']]);
    assert.equal(reason(() => verifyUserCertificate(cert({}, generateSshCa().privateKey).blob, caBlob, now)), 'untrusted_ca');
    assert.equal(reason(() => verifyUserCertificate(cert({ validAfter: now - 7200, validBefore: now - 3600 }).blob, caBlob, now)), 'expired');
    assert.equal(reason(() => verifyUserCertificate(cert({ validAfter: now + 3600, validBefore: now + 7200 }).blob, caBlob, now)), 'not_yet_valid');
    assert.equal(reason(() => verifyUserCertificate(cert({ criticalOptions: { 'no-such-option': 'x' } }).blob, caBlob, now)), 'critical_option');
    assert.equal(reason(() => verifyUserCertificate(cert({ criticalOptions: { 'force-command': '/bin/true' } }).blob, caBlob, now)), 'critical_option');
    assert.equal(reason(() => verifyUserCertificate(c.blob, caBlob, now, 'root')), 'principal');
    // A flipped bit in the signed body: the CA signature fails.
    const tampered = Buffer.from(c.blob);
    tampered[60]! ^= 1;
    assert.notEqual(reason(() => verifyUserCertificate(tampered, caBlob, now)), 'accepted');
    // Possession: the certificate key's signature over the data, not another key's.
    const data = randomBytes(64);
    const wire = (sig: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 64]), sig]);
    assert.equal(verifyPossession(v, data, wire(sign(null, data, c.key))), true);
    assert.equal(verifyPossession(v, data, wire(sign(null, data, generateKeyPairSync('ed25519').privateKey))), false);
    assert.equal(verifyPossession(v, data, Buffer.from('garbage')), false);
  });

  test('truncated, extended and random blobs are refused with a reason, never a crash', () => {
    const c = cert().blob;
    for (let n = 0; n < c.length; n += 7) assert.notEqual(reason(() => verifyUserCertificate(c.subarray(0, n), caBlob, now)), 'accepted', `truncated at ${n}`);
    assert.equal(reason(() => verifyUserCertificate(Buffer.concat([c, Buffer.from([0])]), caBlob, now)), 'malformed');
    for (let i = 0; i < 300; i++) assert.notEqual(reason(() => verifyUserCertificate(randomBytes(i), caBlob, now)), 'accepted');
    // A length field claiming 4 GiB.
    const huge = Buffer.from(c);
    huge.writeUInt32BE(0xffffffff, 0);
    assert.equal(reason(() => verifyUserCertificate(huge, caBlob, now)), 'malformed');
  });

  test('source-address lists', () => {
    assert.equal(sourceAllowed('10.0.0.0/8,127.0.0.1/32', '127.0.0.1'), true);
    assert.equal(sourceAllowed('10.0.0.0/8', '::ffff:10.1.2.3'), true);
    assert.equal(sourceAllowed('10.0.0.0/8', '11.0.0.1'), false);
    assert.equal(sourceAllowed('garbage,999.1.1.1/40', '127.0.0.1'), false);
  });
});

describe('file transfers (files.ts)', () => {
  test('scp commands', () => {
    assert.deepEqual(scpTransfer('scp -t /tmp/x'), { direction: 'upload', path: '/tmp/x' });
    assert.deepEqual(scpTransfer('scp -r -f -- dir with space'), { direction: 'download', path: 'dir with space' });
    assert.equal(scpTransfer('ls -t /tmp'), undefined);
    assert.equal(scpTransfer('scp'), undefined);
  });

  const pkt = (type: number, ...fields: (string | number)[]) => {
    const parts = [Buffer.from([type]), Buffer.from([0, 0, 0, 1])];
    for (const f of fields) {
      if (typeof f === 'number') {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(f);
        parts.push(b);
      } else {
        const b = Buffer.from(f);
        const l = Buffer.alloc(4);
        l.writeUInt32BE(b.length);
        parts.push(l, b);
      }
    }
    const body = Buffer.concat(parts);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
  };

  test('SFTP requests are read across arbitrary splits; file data is skipped; garbage stops the reader', () => {
    const write = Buffer.concat([pkt(6, 'handle', 0), Buffer.alloc(0)]);
    const bigWrite = (() => {
      const data = randomBytes(100_000);
      const body = Buffer.concat([Buffer.from([6, 0, 0, 0, 2, 0, 0, 0, 1, 0x68]), Buffer.alloc(8), Buffer.from([0, 1, 0x86, 0xa0]), data]);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      return Buffer.concat([len, body]);
    })();
    const stream = Buffer.concat([pkt(3, '/etc/passwd', 1, 0), bigWrite, pkt(3, '/tmp/up', 2 | 8 | 0x10, 0), write, pkt(18, '/a', '/b'), pkt(13, '/tmp/old')]);
    for (const step of [1, 3, 17, 4096, stream.length]) {
      const events: SftpEvent[] = [];
      const w = new SftpWatcher((e) => events.push(e));
      for (let i = 0; i < stream.length; i += step) w.push(stream.subarray(i, i + step));
      assert.deepEqual(events, [
        { op: 'open', path: '/etc/passwd', mode: 'read' },
        { op: 'open', path: '/tmp/up', mode: 'write' },
        { op: 'rename', path: '/a', to: '/b' },
        { op: 'remove', path: '/tmp/old' },
      ], `split every ${step} bytes`);
    }
    const events: SftpEvent[] = [];
    const w = new SftpWatcher((e) => events.push(e));
    w.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 3]));
    w.push(pkt(13, '/never'));
    assert.deepEqual(events, []);
    for (let i = 0; i < 200; i++) new SftpWatcher(() => {}).push(randomBytes(i * 10));
  });
});

describe('asciicast (recorder.ts)', () => {
  test('chunks rebuild the cast; a UTF-8 character split across reads stays whole; input only when opted in', async () => {
    const records: { type: string; payload: Record<string, unknown> }[] = [];
    const rec = { record: async (type: string, payload: Record<string, unknown>) => void records.push({ type, payload }) };
    records.push({ type: 'ssh.channel', payload: { channel: 1, cast: CastRecorder.header(80, 24, 'xterm', Date.now()) } });
    const cast = new CastRecorder(rec, 1, { recordInput: false, start: performance.now() });
    const euro = Buffer.from('€');
    cast.output(Buffer.concat([Buffer.from('price: '), euro.subarray(0, 1)]));
    cast.output(euro.subarray(1));
    cast.input(Buffer.from('secret\n'));
    cast.resize(100, 30);
    await cast.end();
    const lines = asciicast(records).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines[0], { version: 2, width: 80, height: 24, timestamp: lines[0].timestamp, env: { TERM: 'xterm' } });
    assert.equal(lines.filter((e) => e[1] === 'o').map((e) => e[2]).join(''), 'price: €');
    assert.equal(lines.some((e) => e[1] === 'i'), false);
    assert.deepEqual(lines.filter((e) => e[1] === 'r').map((e) => e[2]), ['100x30']);
  });
});

describe('upstream key (upstream.ts)', () => {
  test('the generated OpenSSH private key is read by ssh-keygen and matches its public key', (t) => {
    let keygen = true;
    try {
      execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
    } catch (e) {
      keygen = (e as { status?: number }).status !== undefined;
    }
    if (!keygen) return t.skip('ssh-keygen is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'pcx-gw-key-'));
    try {
      const k = freshKey();
      writeFileSync(join(dir, 'id'), k.privateKey, { mode: 0o600 });
      const pub = execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'id')], { encoding: 'utf8' }).trim();
      assert.equal(pub.split(' ').slice(0, 2).join(' '), k.publicKey);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CLI: portcullis ssh, sessions play (cli/commands/ssh.ts)', () => {
  test('the gateway is found by its name or by the target it fronts; postgres gateways are not ssh', () => {
    const gws = [{ name: 'pg', kind: 'postgres', target: 'db', host: '127.0.0.1', port: 1 }, { name: 'ssh-gw', kind: 'ssh', target: 'web-1', host: '0.0.0.0', port: 2222 }];
    assert.equal(pickGateway(gws, 'ssh-gw').port, 2222);
    assert.equal(pickGateway(gws, 'web-1').name, 'ssh-gw');
    assert.throws(() => pickGateway(gws, 'pg'), /no SSH gateway/);
  });

  test('the cast of a recording (NDJSON records as GET /v1/sessions/{id}/recording sends them)', () => {
    const recs = [
      { type: 'session.start', payload: { n: 1 } },
      { type: 'ssh.channel', payload: { n: 2, channel: 1, kind: 'exec' } },
      { type: 'ssh.channel', payload: { n: 3, channel: 2, kind: 'shell', cast: { version: 2, width: 80, height: 24 } } },
      { type: 'ssh.output', payload: { n: 4, channel: 2, events: [[0.1, 'o', 'hello '], [0.2, 'r', '100x30']] } },
      { type: 'ssh.output', payload: { n: 5, channel: 2, events: [[0.3, 'o', 'world']] } },
    ];
    const c = castOf(recs.map((r) => JSON.stringify(r)).join('\n'));
    assert.deepEqual(c.header, { version: 2, width: 80, height: 24 });
    assert.deepEqual(c.events.map((e) => e[2]), ['hello ', '100x30', 'world']);
    assert.throws(() => castOf(JSON.stringify(recs[0])), /no interactive SSH channel/);
  });
});

describe('config (gateways[i] of kind ssh)', () => {
  const targets = [{ name: 'web-1', kind: 'ssh' }, { name: 'orders-db', kind: 'postgres' }];
  const entry = { name: 'ssh-gw', kind: 'ssh', listen: { port: 2222 }, target: 'web-1', host_key_file: './gw_host', upstream: '10.0.0.5', host_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl web-1'] };
  test('a valid entry: defaults filled in, upstream port 22', () => {
    const [g] = loadGateways([entry], targets) as unknown as [Record<string, unknown>];
    assert.deepEqual(g.upstream, { host: '10.0.0.5', port: 22 });
    assert.deepEqual(g.listen, { host: '127.0.0.1', port: 2222 });
    assert.equal(g.record_input, false);
  });
  test('errors name the field', () => {
    const fails = (e: Record<string, unknown>, field: RegExp) => assert.throws(() => loadGateways([e], targets), (err: Error & { field?: string }) => field.test(String(err.field ?? err.message)));
    fails({ ...entry, target: 'orders-db' }, /gateways\[0\]\.target/);
    fails({ ...entry, host_keys: [] }, /host_keys/);
    fails({ ...entry, host_keys: ['not a key'] }, /host_keys/);
    fails({ ...entry, upstream: 'host:99999' }, /upstream/);
    fails({ ...entry, host_key_file: undefined }, /host_key_file/);
    fails({ ...entry, typo: true }, /typo/);
  });
});
