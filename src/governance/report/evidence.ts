// Evidence for auditors: for a period (`2026-Q4`, `2026-11`, `2026`), the rotation, review,
// revocation, break-glass and access-request events of the admin stream — each with its stream,
// sequence number and hash so it can be found in the signed chain — and a verification block
// (chain heads, signed checkpoints, witness) to check the chain offline.
import { InvalidInput } from '../../common/errors.ts';
import type { AuditQuery, AuditRecord, AuditStreamName, AuditVerification, PublicKeyResolver } from '../../audit/types.ts';
import type { Campaign } from '../reviews/types.ts';
import type { RotationItem } from '../lifecycle/lifecycle.ts';

export const EVIDENCE_CATEGORIES = ['rotation', 'review', 'revocation', 'break-glass', 'access-request'] as const;
export type EvidenceCategory = (typeof EVIDENCE_CATEGORIES)[number];

/** Which admin events are evidence of what. */
export function categoryOf(type: string): EvidenceCategory | undefined {
  if (type === 'key.rotated' || type === 'apikey.rotated') return 'rotation';
  if (type.startsWith('review.')) return 'review';
  if (type.startsWith('breakglass.')) return 'break-glass';
  if (type.startsWith('request.') || type === 'grant.created') return 'access-request';
  if (['credential.revoked', 'grant.revoked', 'grant.ended', 'apikey.revoked', 'identity.suspended', 'identity.offboarded'].includes(type) || type.startsWith('lifecycle.')) return 'revocation';
  return undefined;
}

export interface EvidenceItem {
  category: EvidenceCategory;
  type: string;
  time: string;
  actor: string;
  subject: string | null;
  /** Where it is in the signed chain. */
  stream: AuditStreamName;
  seq: number;
  hash: string;
  /** Non-secret details as recorded. */
  payload: Record<string, unknown>;
}

export interface EvidenceReport {
  period: string;
  from: string;
  to: string;
  generated_at: string;
  generated_by: string;
  summary: Record<EvidenceCategory, number>;
  /** Events per category per week of the period (for the chart). */
  weekly: { week: string; counts: Record<EvidenceCategory, number> }[];
  items: EvidenceItem[];
  /** True when the period held more events than one report lists (`items` is cut). */
  truncated: boolean;
  campaigns: (Campaign & { progress?: unknown })[];
  rotation: RotationItem[];
  /** Effective permissions against observed use at report time (the analysis): the estate and the most over-privileged identities. */
  over_privilege: { estate: number; effective: number; used: number; identities: { identity: string; effective: number; used: number; over_privilege: number }[] };
  verification: {
    ok: boolean;
    streams: { stream: AuditStreamName; head_seq: number; head_hash: string | null; checkpoints: number; signed_through: number; witnessed_through: number | null; ok: boolean; reason: string | null }[];
    witness: { source: string; checkpoints: number; ok: boolean } | null;
    /** The checkpoint keys (public JWKs) to verify with offline, retired ones included. */
    keys: unknown[];
  };
}

/** What the report reads (the audit log; the broker passes it). */
export interface EvidenceAudit {
  query(q: AuditQuery): Promise<AuditRecord[]>;
  head(stream: AuditStreamName): Promise<{ seq: number; hash: string }>;
  verifyAsync(keys: PublicKeyResolver): Promise<AuditVerification>;
}

const MAX_ITEMS = 20_000;
const DAY = 86_400_000;

/**
 * `2026-Q4` → [2026-10-01, 2027-01-01); `2026-11` → that month; `2026` → that year (UTC); `7d`
 * (1 to 366 days) → the last that many days up to `now`.
 */
export function parsePeriod(period: string, now = Date.now()): { from: number; to: number } {
  const days = /^([1-9]\d{0,2})d$/.exec(String(period));
  if (days && Number(days[1]) <= 366) return { from: now - Number(days[1]) * DAY, to: now };
  const m = /^(\d{4})(?:-(Q[1-4]|0[1-9]|1[0-2]))?$/.exec(String(period));
  if (!m) throw new InvalidInput('period must look like 2026-Q4, 2026-11, 2026 or 7d (the last 7 days)', 'period');
  const y = Number(m[1]);
  if (m[2] === undefined) return { from: Date.UTC(y, 0, 1), to: Date.UTC(y + 1, 0, 1) };
  if (m[2].startsWith('Q')) {
    const q = Number(m[2].slice(1)) - 1;
    return { from: Date.UTC(y, q * 3, 1), to: Date.UTC(y, q * 3 + 3, 1) };
  }
  const mo = Number(m[2]) - 1;
  return { from: Date.UTC(y, mo, 1), to: Date.UTC(y, mo + 1, 1) };
}

const zero = (): Record<EvidenceCategory, number> => ({ rotation: 0, review: 0, revocation: 0, 'break-glass': 0, 'access-request': 0 });

export async function buildEvidence(o: {
  period: string;
  from: number;
  to: number;
  now: number;
  audit: EvidenceAudit;
  keys: PublicKeyResolver;
  auditKeys: unknown[];
  campaigns: Campaign[];
  rotation: RotationItem[];
  usage: { identity: string; effective: number; used: number; over_privilege: number }[];
  generatedBy: string;
}): Promise<EvidenceReport> {
  const items: EvidenceItem[] = [];
  let truncated = false;
  let after = 0;
  for (;;) {
    const page = await o.audit.query({ stream: 'admin', since: o.from, until: o.to, afterSeq: after, limit: 1000 });
    for (const e of page) {
      const category = categoryOf(e.type);
      if (!category) continue;
      if (items.length >= MAX_ITEMS) {
        truncated = true;
        break;
      }
      items.push({ category, type: e.type, time: e.time, actor: e.actor, subject: e.subject ?? null, stream: e.stream, seq: e.seq, hash: e.hash, payload: e.payload });
    }
    if (page.length < 1000 || truncated) break;
    after = page[page.length - 1]!.seq;
  }
  const summary = zero();
  for (const i of items) summary[i.category]++;
  const weekly: EvidenceReport['weekly'] = [];
  for (let w = o.from; w < o.to; w += 7 * DAY) weekly.push({ week: new Date(w).toISOString().slice(0, 10), counts: zero() });
  for (const i of items) {
    const idx = Math.min(weekly.length - 1, Math.floor((Date.parse(i.time) - o.from) / (7 * DAY)));
    if (idx >= 0) weekly[idx]!.counts[i.category]++;
  }
  const v = await o.audit.verifyAsync(o.keys);
  const streams = [];
  for (const s of v.streams) {
    const head = await o.audit.head(s.stream);
    streams.push({ stream: s.stream, head_seq: head.seq, head_hash: head.seq > 0 ? head.hash : null, checkpoints: s.checkpoints, signed_through: s.signedThrough, witnessed_through: s.witnessedThrough ?? null, ok: s.ok, reason: s.reason ?? null });
  }
  return {
    period: o.period,
    from: new Date(o.from).toISOString(),
    to: new Date(o.to).toISOString(),
    generated_at: new Date(o.now).toISOString(),
    generated_by: o.generatedBy,
    summary,
    weekly,
    items,
    truncated,
    campaigns: o.campaigns,
    rotation: o.rotation,
    over_privilege: overPrivilegeOf(o.usage),
    verification: { ok: v.ok, streams, witness: v.witness ? { source: v.witness.source, checkpoints: v.witness.checkpoints, ok: v.witness.ok } : null, keys: o.auditKeys },
  };
}

/** The estate's over-privilege ratio (unused / effective over every identity) and the 20 most over-privileged. */
function overPrivilegeOf(usage: { identity: string; effective: number; used: number; over_privilege: number }[]): EvidenceReport['over_privilege'] {
  const effective = usage.reduce((n, u) => n + u.effective, 0);
  const used = usage.reduce((n, u) => n + u.used, 0);
  const identities = usage.filter((u) => u.effective > 0).sort((a, b) => b.over_privilege - a.over_privilege || a.identity.localeCompare(b.identity)).slice(0, 20);
  return { estate: effective === 0 ? 0 : Math.round(((effective - used) / effective) * 10_000) / 10_000, effective, used, identities };
}
