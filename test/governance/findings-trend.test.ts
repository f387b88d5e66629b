// The findings trend read from snapshots (each day's last one; hostile payload values count as 0)
// and the evidence report's rolling period (`7d`: the last seven days up to now).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotPayload, trendFromSnapshots, trendWindow } from '../../src/governance/findings-trend.ts';
import { parsePeriod } from '../../src/governance/report/evidence.ts';

const NOW = Date.parse('2026-12-02T14:30:00Z');

describe('findings trend', () => {
  it('counts findings by severity, OWASP category and code; the codes as pairs', () => {
    const p = snapshotPayload([
      { code: 'apikey.expiring', severity: 'medium', owasp: 'NHI7:2025 Long-Lived Secrets' },
      { code: 'apikey.legacy', severity: 'low', owasp: 'NHI7:2025 Long-Lived Secrets' },
      { code: 'identity.shared', severity: 'medium', owasp: 'NHI9:2025 NHI Reuse' },
    ]);
    assert.deepEqual(p, { total: 3, by_severity: { high: 0, medium: 2, low: 1 }, by_owasp: { NHI7: 2, NHI9: 1 }, codes: [['apikey.expiring', 1], ['apikey.legacy', 1], ['identity.shared', 1]] });
  });

  it('keeps each day’s last snapshot inside the window, oldest day first; junk counts as 0', () => {
    const { from, to } = trendWindow(3, NOW);
    assert.deepEqual([new Date(from).toISOString(), new Date(to).toISOString()], ['2026-11-30T00:00:00.000Z', '2026-12-03T00:00:00.000Z']);
    const snap = (time: string, total: unknown, extra: Record<string, unknown> = {}) => ({ time, payload: { total, by_severity: { high: 1, medium: 'x', low: -2 }, by_owasp: { NHI1: 2 }, codes: [['identity.unused', 2], 'junk', [3, 4]], ...extra } });
    const t = trendFromSnapshots(
      [snap('2026-12-01T23:00:00.000Z', 5), snap('2026-11-29T23:00:00.000Z', 9), snap('2026-12-01T08:00:00.000Z', 4), snap('2026-11-30T23:00:00.000Z', 1.5), snap('2026-12-03T00:00:00.000Z', 7)],
      from,
      to,
    );
    assert.deepEqual(t.days.map((d) => [d.day, d.total]), [['2026-11-30', 0], ['2026-12-01', 5]]);
    assert.deepEqual(t.days[1]!.by_severity, { high: 1, medium: 0, low: 0 });
    assert.deepEqual(t.days[1]!.by_code, { 'identity.unused': 2 });
    assert.equal(t.days[1]!.recorded_at, '2026-12-01T23:00:00.000Z');
  });
});

describe('evidence period', () => {
  it('reads 7d as the last seven days up to now, and refuses what is not a period', () => {
    assert.deepEqual(parsePeriod('7d', NOW), { from: NOW - 7 * 86_400_000, to: NOW });
    assert.deepEqual(parsePeriod('2026-11', NOW), { from: Date.parse('2026-11-01T00:00:00Z'), to: Date.parse('2026-12-01T00:00:00Z') });
    for (const bad of ['0d', '367d', '7', 'd', '7h', '1000d']) assert.throws(() => parsePeriod(bad, NOW), /period must look like/, bad);
  });
});
