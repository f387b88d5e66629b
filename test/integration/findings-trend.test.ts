// Findings over time over real HTTP against the real broker (the run's store): the governance job
// records one `findings.snapshot` a UTC day in the admin stream, and GET /v1/findings/trend gives,
// per day, exactly the counts GET /v1/findings answered at that time; identity.read decides who reads it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import type { Json } from '../json.ts';

/** The counts of a list of findings, as the trend reports them. */
function counts(findings: Json[]): Json {
  const by = (k: string) => {
    const out: Record<string, number> = {};
    for (const f of findings) {
      const key = k === 'owasp' ? String(f.owasp).split(':')[0]! : String(f[k]);
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  };
  const sev = by('severity');
  return { total: findings.length, by_severity: { high: sev.high ?? 0, medium: sev.medium ?? 0, low: sev.low ?? 0 }, by_owasp: by('owasp'), by_code: by('code') };
}

describe('findings trend', () => {
  let h: Harness;
  let admin: string;
  const seen: { day: string; counts: Json }[] = [];

  /** The governance job's pass now, and the findings an administrator reads at the same time. */
  async function sweepAndRead(): Promise<void> {
    await h.running.broker.governanceSweep();
    const f = await h.get('/v1/findings', admin);
    assert.equal(f.status, 200, JSON.stringify(f.body));
    seen.push({ day: new Date(h.clock.now()).toISOString().slice(0, 10), counts: counts(f.body.findings as Json[]) });
  }

  before(async () => {
    // Shortly before midnight UTC, so the next day comes within one session (10 minutes).
    h = await startHarness('', {}, Date.parse('2026-11-02T23:55:00Z'));
    admin = await h.admin();
    await sweepAndRead();
    // An API key minted between the snapshots (a legacy credential, NHI7): the findings change.
    const key = await h.post('/v1/apikeys', { identity: 'workload:github/acme/api', ttl: '10d' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    h.clock.advance(6 * 60_000);
    await sweepAndRead();
  });
  after(async () => {
    await h?.close();
  });

  it('gives, per day, the counts of the findings at the time of that day’s snapshot', async () => {
    const r = await h.get('/v1/findings/trend?days=7', admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const days = r.body.days as Json[];
    assert.deepEqual(
      days.map((d) => ({ day: d.day, counts: { total: d.total, by_severity: d.by_severity, by_owasp: d.by_owasp, by_code: d.by_code } })),
      seen,
    );
    assert.deepEqual(days.map((d) => d.day), ['2026-11-02', '2026-11-03']);
    assert.equal(r.body.from, '2026-10-28T00:00:00.000Z');
    assert.equal(r.body.to, '2026-11-04T00:00:00.000Z');
    // The second snapshot sees the key the first did not.
    assert.equal((days[0]!.by_code as Json)['apikey.legacy'], undefined);
    assert.equal((days[1]!.by_code as Json)['apikey.legacy'], 1);
    assert.equal(Number(days[1]!.total), Number(days[0]!.total) + 1);
    // A shorter window: today only.
    const today = await h.get('/v1/findings/trend?days=1', admin);
    assert.deepEqual((today.body.days as Json[]).map((d) => d.day), ['2026-11-03']);
  });

  it('records one snapshot a day in the admin stream (a second pass the same day adds none); the chain verifies', async () => {
    await h.running.broker.governanceSweep();
    h.clock.advance(60_000);
    await h.running.broker.governanceSweep();
    await h.running.broker.audit.flush();
    const recorded = await h.running.broker.audit.query({ stream: 'admin', type: 'findings.snapshot', limit: 100 });
    assert.deepEqual(recorded.map((e) => e.time.slice(0, 10)), ['2026-11-02', '2026-11-03']);
    assert.equal(recorded[0]!.actor, 'system');
    // Codes are kept as they are (not redacted like a secret-looking key would be).
    assert.doesNotMatch(JSON.stringify(recorded.map((e) => e.payload)), /redacted/);
    const v = await h.get('/v1/audit/verify', admin);
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
  });

  it('is identity.read on every identity: a workload is refused; a bad window is a 400 naming the field', async () => {
    const workload = await h.loginCi();
    assert.equal((await h.get('/v1/findings/trend', workload)).status, 403);
    assert.equal((await h.get('/v1/findings/trend')).status, 401);
    const bad = await h.get('/v1/findings/trend?days=0', admin);
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /days/);
  });
});
