// Posture findings: what an auditor would flag in the inventory right now. Computed on demand from
// the registry, the API keys and the leases — nothing is stored, so nothing goes stale.
import type { Identity } from './identities.ts';

export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  /** Stable code, e.g. `identity.no_owner`. */
  code: string;
  severity: Severity;
  /** What it is about: an identity id, an API key id, a lease id. */
  subject: string;
  message: string;
}

/** The facts findings are computed from (kept minimal so this module depends on no other domain). */
export interface PostureInput {
  now: number;
  identities: Identity[];
  apikeys: { id: string; identity_id: string; status: string; expires_at: string; rotate_by: string }[];
  leases: { id: string; identityId: string; target: string; status: string; lastError: string | null }[];
  /** Agents whose profile names a sponsor (docs/agents.md); given, every other active agent is a finding. */
  sponsoredAgents?: ReadonlySet<string>;
  /** An active identity unused for this long is stale (default 30 days). */
  staleAfterMs?: number;
}

const DAY = 86_400_000;
const ORDER: Record<Severity, number> = { high: 0, medium: 1, low: 2 };

export function computeFindings(p: PostureInput): Finding[] {
  const out: Finding[] = [];
  const stale = p.staleAfterMs ?? 30 * DAY;
  for (const i of p.identities) {
    if (i.status !== 'active') continue;
    if (i.kind !== 'user' && !i.owner) {
      out.push({ code: 'identity.no_owner', severity: 'high', subject: i.id, message: `${i.kind} ${i.id} has no owner: nobody answers for it` });
    }
    if (i.kind === 'agent' && p.sponsoredAgents !== undefined && !p.sponsoredAgents.has(i.id)) {
      out.push({ code: 'agent.no_sponsor', severity: 'high', subject: i.id, message: `agent ${i.id} has no sponsor: no human answers for what it does (portcullis agents set ${i.id} --sponsor user:…)` });
    }
    if (i.kind !== 'user' && !i.purpose) {
      out.push({ code: 'identity.no_purpose', severity: 'low', subject: i.id, message: `${i.id} has no stated purpose` });
    }
    const lastUse = Date.parse(i.last_authenticated_at ?? i.created_at);
    if (p.now - lastUse > stale) {
      const days = Math.floor((p.now - lastUse) / DAY);
      out.push({
        code: 'identity.stale',
        severity: 'medium',
        subject: i.id,
        message: i.last_authenticated_at ? `${i.id} has not authenticated for ${days} days: offboard it if unused` : `${i.id} has never authenticated (declared ${days} days ago)`,
      });
    }
  }
  for (const k of p.apikeys) {
    if (k.status !== 'active') continue;
    out.push({ code: 'apikey.legacy', severity: 'low', subject: k.id, message: `${k.identity_id} still uses API key ${k.id}: move it to workload identity federation` });
    if (Date.parse(k.rotate_by) < p.now) {
      out.push({ code: 'apikey.rotation_overdue', severity: 'high', subject: k.id, message: `API key ${k.id} of ${k.identity_id} was due for rotation on ${k.rotate_by}` });
    }
    const left = Date.parse(k.expires_at) - p.now;
    if (left > 0 && left < 7 * DAY) {
      out.push({ code: 'apikey.expiring', severity: 'medium', subject: k.id, message: `API key ${k.id} of ${k.identity_id} expires on ${k.expires_at}` });
    }
  }
  for (const l of p.leases) {
    if (l.status === 'revoke_failed') {
      out.push({ code: 'lease.revoke_failed', severity: 'high', subject: l.id, message: `lease ${l.id} (${l.identityId} on ${l.target}) could not be revoked and is being retried: ${l.lastError ?? 'unknown error'}` });
    }
  }
  return out.sort((a, b) => ORDER[a.severity] - ORDER[b.severity] || a.code.localeCompare(b.code) || a.subject.localeCompare(b.subject));
}
