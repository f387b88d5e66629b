// A real server with `audit.witness.file` (issue #8 item 11): GET /v1/audit/verify checks the witness; with the server down,
// `portcullis audit verify --data DIR --witness FILE` catches what the store alone cannot.
// (Decisions flowing during a long verification: audit-verify-online.test.ts.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DatabaseSync } from 'node:sqlite';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness } from './harness.ts';
import { AUDIT_DB_FILE } from '../../src/store/sqlite/index.ts';
import type { AuditRecord } from '../../src/audit/types.ts';
import type { Harness } from './harness.ts';
import type { Json } from '../json.ts';
import { TEST_STORE } from '../store/pg.ts';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const EVENTS = 3_500;

function cli(...args: string[]): { status: number; out: Json; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'audit', 'verify', ...args, '--json'], { encoding: 'utf8' });
  let out: unknown;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    out = r.stdout;
  }
  return { status: r.status ?? -1, out, stderr: r.stderr };
}

describe('audit witness and online verification', { skip: TEST_STORE === 'postgres' ? 'a witness file (a PostgreSQL store requires a witness URL; the cluster test covers it)' : false }, () => {
  let h: Harness;
  let witnessDir: string;
  let witness: string;
  before(async () => {
    witnessDir = mkdtempSync(join(tmpdir(), 'pcx-witness-'));
    witness = join(witnessDir, 'checkpoints.jsonl');
    h = await startHarness('', {}, undefined, { audit: `{ fail_closed: true, checkpoint_every: 1000, witness: { file: ${witness} } }` });
  });
  after(async () => {
    await h.close();
    rmSync(witnessDir, { recursive: true, force: true });
  });

  it('GET /v1/audit/verify checks the configured witness', async () => {
    const audit = h.running.broker.audit;
    const batch: Promise<AuditRecord>[] = [];
    for (let j = 0; j < EVENTS; j++) batch.push(audit.append({ stream: 'authz', type: 'authz.decision', actor: `workload:w${j % 50}`, decision: 'allow', payload: { j } }));
    await Promise.all(batch);
    await audit.flush();
    assert.ok(readFileSync(witness, 'utf8').split('\n').length > EVENTS / 1000, 'checkpoints were witnessed');
    const admin = await h.admin();
    const v = await h.get('/v1/audit/verify', admin);
    assert.equal(v.status, 200);
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
    assert.equal(v.body.witness.ok, true);
    assert.equal(v.body.witness.source, witness);
    const authz = v.body.streams.find((s: { stream: string }) => s.stream === 'authz');
    assert.ok(authz.events >= EVENTS && authz.witnessed_through >= EVENTS - 1000, JSON.stringify(authz));
    // The witness is outside the store: a line the server did not sign turns the online verdict too.
    const first = readFileSync(witness, 'utf8').split('\n')[0]!;
    appendFileSync(witness, first.replace(/"seq":(\d+)/, '"seq":999999999') + '\n');
    const t = await h.get('/v1/audit/verify', admin);
    assert.equal(t.body.ok, false);
    assert.match(t.body.witness.reason, /witness line \d+: .*invalid signature/);
    writeFileSync(witness, readFileSync(witness, 'utf8').split('\n').filter((l) => !l.includes('"seq":999999999')).join('\n'));
  });

  it('offline: --witness catches truncation with checkpoints and head that the store alone passes; a tampered witness fails', async () => {
    await h.running.stop();
    const dataDir = join(h.dir, 'data');
    const clean = cli('--data', dataDir, '--witness', witness);
    assert.equal(clean.status, 0, JSON.stringify(clean.out) + clean.stderr);
    assert.equal(clean.out.witness.ok, true);

    const cut = join(h.dir, 'cut');
    cpSync(dataDir, cut, { recursive: true });
    const db = new DatabaseSync(join(cut, AUDIT_DB_FILE));
    db.exec("DELETE FROM audit_events WHERE stream = 'authz' AND seq > 1500; DELETE FROM audit_checkpoints WHERE stream = 'authz' AND seq > 1500");
    db.exec("UPDATE audit_heads SET seq = 1500, hash = (SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = 1500) WHERE stream = 'authz'");
    db.close();
    assert.equal(cli('--data', cut).status, 0, 'the store alone is consistent');
    const r = cli('--data', cut, '--witness', witness);
    assert.equal(r.status, 1);
    assert.equal(r.out.streams.find((s: { stream: string }) => s.stream === 'authz').first_bad_seq, 1501);

    const forged = join(witnessDir, 'forged.jsonl');
    const lines = readFileSync(witness, 'utf8').split('\n');
    lines[0] = lines[0]!.replace(/"hash":"[0-9a-f]{4}/, '"hash":"0000');
    writeFileSync(forged, lines.join('\n'));
    const t = cli('--data', dataDir, '--witness', forged);
    assert.equal(t.status, 1);
    assert.equal(t.out.witness.ok, false);
    assert.match(t.out.witness.reason, /witness line 1/);

    const usage = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--witness', witness], { encoding: 'utf8' });
    assert.equal(usage.status, 2, 'a witness needs --data');
    assert.match(usage.stderr, /--data/);
  });
});
