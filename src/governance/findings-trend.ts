// Findings over time: the daily snapshot the governance job records in the admin stream
// (`findings.snapshot`: counts by severity, OWASP NHI category and code) and the per-day trend read
// back from those snapshots for charts (`GET /v1/findings/trend`, `portcullis findings trend`).
import type { AuditRecord } from '../audit/types.ts';

const DAY = 86_400_000;

/** What one snapshot records: counts, never subjects (the findings themselves are recomputed on demand). */
export interface FindingCounts {
  total: number;
  by_severity: { high: number; medium: number; low: number };
  /** By OWASP NHI Top 10 (2025) category, e.g. `NHI7`. */
  by_owasp: Record<string, number>;
  by_code: Record<string, number>;
}

export interface TrendDay extends FindingCounts {
  /** The UTC day, `YYYY-MM-DD`. */
  day: string;
  /** When that day's (last) snapshot was taken. */
  recorded_at: string;
}

export interface FindingsTrend {
  from: string;
  to: string;
  /** One entry per UTC day of the window that has a snapshot, oldest first (a day without one is absent). */
  days: TrendDay[];
}

/** The UTC day (`YYYY-MM-DD`) of a time in ms. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * The payload of a snapshot: the counts, with the codes as `[code, count]` pairs (an audit payload
 * redacts the values of keys that look like secrets — `apikey.*` would be one).
 */
export function snapshotPayload(findings: { code: string; severity: 'high' | 'medium' | 'low'; owasp: string }[]): Omit<FindingCounts, 'by_code'> & { codes: [string, number][] } {
  const c: FindingCounts = { total: findings.length, by_severity: { high: 0, medium: 0, low: 0 }, by_owasp: {}, by_code: {} };
  for (const f of findings) {
    c.by_severity[f.severity]++;
    const nhi = f.owasp.split(':')[0]!;
    c.by_owasp[nhi] = (c.by_owasp[nhi] ?? 0) + 1;
    c.by_code[f.code] = (c.by_code[f.code] ?? 0) + 1;
  }
  const { by_code, ...rest } = c;
  return { ...rest, codes: Object.entries(by_code).sort(([a], [b]) => a.localeCompare(b)) };
}

const count = (x: unknown): number => (typeof x === 'number' && Number.isInteger(x) && x >= 0 ? x : 0);
const counts = (x: unknown): Record<string, number> => Object.fromEntries(Object.entries(typeof x === 'object' && x !== null ? x : {}).map(([k, v]) => [k, count(v)]));

/** The trend over [from, to) from `findings.snapshot` records (any order): each day's last snapshot. */
export function trendFromSnapshots(records: Iterable<Pick<AuditRecord, 'time' | 'payload'>>, from: number, to: number): FindingsTrend {
  const byDay = new Map<string, TrendDay>();
  for (const r of records) {
    const t = Date.parse(r.time);
    if (!(t >= from && t < to)) continue;
    const day = utcDay(t);
    const seen = byDay.get(day);
    if (seen && seen.recorded_at >= r.time) continue;
    const p = (r.payload ?? {}) as Record<string, unknown>;
    const sev = counts(p.by_severity);
    const codes = Array.isArray(p.codes) ? p.codes.filter((x): x is [string, number] => Array.isArray(x) && typeof x[0] === 'string') : [];
    byDay.set(day, { day, recorded_at: r.time, total: count(p.total), by_severity: { high: sev.high ?? 0, medium: sev.medium ?? 0, low: sev.low ?? 0 }, by_owasp: counts(p.by_owasp), by_code: Object.fromEntries(codes.map(([k, v]) => [k, count(v)])) });
  }
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), days: [...byDay.values()].sort((a, b) => a.day.localeCompare(b.day)) };
}

/** The window of a trend: the last `days` UTC days, today included. */
export function trendWindow(days: number, now: number): { from: number; to: number } {
  const today = Math.floor(now / DAY) * DAY;
  return { from: today - (days - 1) * DAY, to: today + DAY };
}
