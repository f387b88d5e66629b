// The transmitter alone, over real loopback HTTP and a real audit log: deliveries per receiver are
// bounded, and receivers go through the outbound-address guard (a private address is refused
// unless allowed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, generateKeyPair, type CryptoKey } from 'jose';
import { openDatabase, SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteAuditStore } from '../../src/store/sqlite/audit/index.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { systemClock } from '../../src/common/clock.ts';
import { outboundFetch } from '../../src/common/outbound.ts';
import { SignalTransmitter } from '../../src/signals/transmitter.ts';

async function setup(allowPrivate: string[], endpoint: string) {
  const audit = new AuditLog(new SqliteAuditStore(new SqliteDb(openDatabase(join(mkdtempSync(join(tmpdir(), 'pcx-tx-')), 'audit.db')))), {});
  const { privateKey } = await generateKeyPair('EdDSA');
  const tx = new SignalTransmitter({
    receivers: [{ name: 'r', endpoint, audience: 'https://r.test', events: ['session-revoked', 'credential-change'] }],
    issuer: 'https://portcullis.test',
    sign: (claims, typ) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ }).sign(privateKey as CryptoKey),
    fetch: outboundFetch({ allowPrivate }),
    clock: systemClock,
    audit,
    maxAttempts: 2,
    backoffBaseMs: 10,
    timeoutMs: 5000,
  });
  return { audit, tx };
}

test('transmitter: at most 8 deliveries in flight per receiver, every one delivered', async () => {
  let inFlight = 0;
  let most = 0;
  let delivered = 0;
  // Requests are held until 8 are in, then a moment longer (a 9th would arrive then if the bound
  // were missing), then answered together.
  let held: (() => void)[] = [];
  const server = createServer((req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    req.resume();
    req.on('end', () => {
      held.push(() => {
        inFlight--;
        delivered++;
        res.writeHead(202).end();
      });
      if (held.length === 8 || delivered + held.length === 40) {
        const batch = held;
        held = [];
        setTimeout(() => batch.forEach((f) => f()), 50);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { audit, tx } = await setup(['127.0.0.0/8'], `http://127.0.0.1:${(server.address() as { port: number }).port}/events`);
  try {
    for (let i = 0; i < 40; i++) tx.emit({ event: 'session-revoked', identityId: `workload:w-${i}`, reason: 'trust revoked' });
    await tx.idle();
    assert.equal(delivered, 40);
    assert.equal(most, 8, 'eight at once, never more');
    assert.equal((await audit.query({ stream: 'admin', type: 'signal.sent', limit: 1000 })).length, 40);
  } finally {
    await tx.stop();
    await audit.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('transmitter: a receiver at a private address is refused by the outbound guard unless allowed', async () => {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(202).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { audit, tx } = await setup([], `http://127.0.0.1:${(server.address() as { port: number }).port}/events`);
  try {
    tx.emit({ event: 'credential-change', identityId: 'workload:w', reason: 'key revoked' });
    await tx.idle();
    assert.equal(hits, 0);
    const failed = await audit.query({ stream: 'admin', type: 'signal.send_failed' });
    assert.equal(failed.length, 1);
    assert.match(String(failed[0]!.payload.error), /private|not allowed|refused/i);
  } finally {
    await tx.stop();
    await audit.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
