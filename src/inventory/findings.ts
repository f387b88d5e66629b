// Posture findings: what an auditor would flag in the inventory right now. Computed on demand from
// the registry, the API keys, the leases and (when given) the recorded activity and observed use —
// nothing is stored, so nothing goes stale. Each finding names its OWASP Non-Human Identities Top 10
// (2025) category, its NIST CSF 2.0 subcategories and what to do about it.
import type { Identity } from './identities.ts';

export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  /** Stable code, e.g. `identity.no_owner`. */
  code: string;
  severity: Severity;
  /** What it is about: an identity id, an API key id, a lease id. */
  subject: string;
  message: string;
  /** OWASP Non-Human Identities Top 10 (2025), e.g. `NHI7:2025 Long-Lived Secrets`. */
  owasp: string;
  /** NIST CSF 2.0 subcategories, e.g. `PR.AA-01`. */
  nist: string[];
  /** What to do about it. */
  remediation: string;
}

/** OWASP Non-Human Identities Top 10, 2025 edition. */
export const OWASP_NHI_2025 = {
  NHI1: 'NHI1:2025 Improper Offboarding',
  NHI2: 'NHI2:2025 Secret Leakage',
  NHI3: 'NHI3:2025 Vulnerable Third-Party NHI',
  NHI4: 'NHI4:2025 Insecure Authentication',
  NHI5: 'NHI5:2025 Overprivileged NHI',
  NHI6: 'NHI6:2025 Insecure Cloud Deployment Configurations',
  NHI7: 'NHI7:2025 Long-Lived Secrets',
  NHI8: 'NHI8:2025 Environment Isolation',
  NHI9: 'NHI9:2025 NHI Reuse',
  NHI10: 'NHI10:2025 Human Use of NHI',
} as const;

/** Each finding code's category, NIST CSF 2.0 subcategories and remediation. */
export const FINDING_STANDARDS: Record<string, { owasp: keyof typeof OWASP_NHI_2025; nist: string[]; remediation: string }> = {
  'identity.no_owner': { owasp: 'NHI1', nist: ['GV.RR-02', 'PR.AA-01'], remediation: 'Set an owner (`portcullis identities update ID --owner team:…`); an identity nobody answers for is never reviewed or offboarded.' },
  'agent.no_sponsor': { owasp: 'NHI1', nist: ['GV.RR-02', 'PR.AA-01'], remediation: 'Name the accountable human (`portcullis agents set ID --sponsor user:…`); until then no assignment can be made for it.' },
  'identity.no_purpose': { owasp: 'NHI1', nist: ['ID.AM-08', 'PR.AA-01'], remediation: 'State why it exists (`--purpose`), so a reviewer can tell when it is no longer needed.' },
  'identity.stale': { owasp: 'NHI1', nist: ['PR.AA-01', 'ID.AM-08'], remediation: 'Offboard it if unused, or set lifecycle.stale so idle identities are warned and offboarded on a cadence.' },
  'identity.unused': { owasp: 'NHI1', nist: ['PR.AA-05', 'DE.CM-03'], remediation: 'No decision allowed it anything in the window: suspend it, or review it in an access review campaign.' },
  'identity.over_privileged': { owasp: 'NHI5', nist: ['PR.AA-05'], remediation: 'Narrow its policies to what it uses (`portcullis policies suggest --identity ID`, checked with `policies replay`).' },
  'identity.shared': { owasp: 'NHI9', nist: ['PR.AA-03', 'DE.CM-03'], remediation: 'One identity per workload: split it so each deployment proves its own identity, and bind each to its trust.' },
  'identity.human_use': { owasp: 'NHI10', nist: ['PR.AA-03', 'PR.AA-05', 'DE.CM-03'], remediation: 'People sign in as themselves (an oidc-human trust) and request access; revoke the human path to this workload identity.' },
  'identity.environment_crossing': { owasp: 'NHI8', nist: ['PR.IR-01', 'PR.AA-05'], remediation: 'Keep each environment’s identities to its resources: remove the permits (or bridges) that reach another environment.' },
  'apikey.legacy': { owasp: 'NHI7', nist: ['PR.AA-03'], remediation: 'Move the workload to federation (OIDC / SPIFFE) and revoke the key.' },
  'apikey.rotation_overdue': { owasp: 'NHI7', nist: ['PR.AA-01'], remediation: 'Rotate it now (`portcullis apikeys rotate KEY`) and deploy the new key.' },
  'apikey.expiring': { owasp: 'NHI7', nist: ['PR.AA-01'], remediation: 'Rotate it before it expires, or let it lapse if it is no longer used.' },
  'apikey.long_lived': { owasp: 'NHI7', nist: ['PR.AA-01', 'PR.AA-03'], remediation: 'Mint keys with a short ttl (and rotate_after), or better, replace the key with a federated identity.' },
  'apikey.unused': { owasp: 'NHI1', nist: ['PR.AA-01'], remediation: 'Revoke the key (`portcullis apikeys revoke KEY`): nothing uses it.' },
  'lease.revoke_failed': { owasp: 'NHI1', nist: ['PR.AA-01', 'PR.AA-05'], remediation: 'Fix the target connection (see the error); Portcullis keeps retrying — or drop the account at the target by hand.' },
};

/** What was recorded of one identity over the window (authn and allowed authz events). */
export interface IdentityActivity {
  identity_id: string;
  /** Distinct source addresses it authenticated from. */
  sources: string[];
  /** Logins through a human trust (oidc-human, bootstrap) or with human factors (MFA). */
  human_logins: number;
  /** Allowed decisions on resources of another environment than its own. */
  crossings: { resource: string; environment: string; allows: number }[];
  /** Last allowed decision (RFC 3339), null when none in the window. */
  last_allowed_at: string | null;
}

/** The facts findings are computed from (kept minimal so this module depends on no other domain). */
export interface PostureInput {
  now: number;
  identities: Identity[];
  apikeys: { id: string; identity_id: string; status: string; expires_at: string; rotate_by: string; created_at?: string; last_used_at?: string }[];
  leases: { id: string; identityId: string; target: string; status: string; lastError: string | null }[];
  /** Agents whose profile names a sponsor (docs/agents.md); given, every other active agent is a finding. */
  sponsoredAgents?: ReadonlySet<string>;
  /** An active identity unused for this long is stale (default 30 days). */
  staleAfterMs?: number;
  /** Recorded activity over `windowMs` (absent: the activity findings are not computed). */
  activity?: IdentityActivity[];
  windowMs?: number;
  /** Observed use against effective permissions (from the analysis), per identity. */
  usage?: { identity: string; effective: number; used: number; over_privilege: number }[];
  /** An identity (or API key) with no allowed decision (use) for this long is unused (default 90 days). */
  unusedAfterMs?: number;
  /** More distinct source addresses than this in the window is a shared identity (default 5). */
  sharedSources?: number;
  /** An API key living longer than this is long-lived (default 30 days). */
  longLivedMs?: number;
  /** Over-privilege ratio at or above this (with at least 4 effective permissions) is a finding (default 0.5). */
  overPrivilege?: number;
}

const DAY = 86_400_000;
const ORDER: Record<Severity, number> = { high: 0, medium: 1, low: 2 };

type Raw = Omit<Finding, 'owasp' | 'nist' | 'remediation'>;

export function computeFindings(p: PostureInput): Finding[] {
  const out: Raw[] = [];
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
  activityFindings(p, out);
  for (const l of p.leases) {
    if (l.status === 'revoke_failed') {
      out.push({ code: 'lease.revoke_failed', severity: 'high', subject: l.id, message: `lease ${l.id} (${l.identityId} on ${l.target}) could not be revoked and is being retried: ${l.lastError ?? 'unknown error'}` });
    }
  }
  return out
    .map((f) => {
      const std = FINDING_STANDARDS[f.code]!;
      return { ...f, owasp: OWASP_NHI_2025[std.owasp], nist: std.nist, remediation: std.remediation };
    })
    .sort((a, b) => ORDER[a.severity] - ORDER[b.severity] || a.code.localeCompare(b.code) || a.subject.localeCompare(b.subject));
}

/** The findings from recorded activity and observed use (and the API keys' ages and last use). */
function activityFindings(p: PostureInput, out: Raw[]): void {
  const unused = p.unusedAfterMs ?? 90 * DAY;
  const days = (ms: number) => Math.round(ms / DAY);
  for (const k of p.apikeys) {
    if (k.status !== 'active' || k.created_at === undefined) continue;
    const life = Date.parse(k.expires_at) - Date.parse(k.created_at);
    if (life > (p.longLivedMs ?? 30 * DAY)) out.push({ code: 'apikey.long_lived', severity: 'medium', subject: k.id, message: `API key ${k.id} of ${k.identity_id} lives ${days(life)} days` });
    const last = Date.parse(k.last_used_at ?? k.created_at);
    if (p.now - last >= unused) out.push({ code: 'apikey.unused', severity: 'medium', subject: k.id, message: `API key ${k.id} of ${k.identity_id} ${k.last_used_at ? `was last used ${days(p.now - last)} days ago` : `has never been used (minted ${days(p.now - last)} days ago)`}` });
  }
  const active = new Map(p.identities.filter((i) => i.status === 'active' && i.kind !== 'user').map((i) => [i.id, i]));
  for (const a of p.activity ?? []) {
    const i = active.get(a.identity_id);
    if (!i) continue;
    if (a.sources.length > (p.sharedSources ?? 5)) out.push({ code: 'identity.shared', severity: 'medium', subject: i.id, message: `${i.id} authenticated from ${a.sources.length} different addresses in ${days(p.windowMs ?? 0)} days: one identity shared by many workloads?` });
    if (a.human_logins > 0) out.push({ code: 'identity.human_use', severity: 'high', subject: i.id, message: `${i.kind} ${i.id} was signed in to by a person ${a.human_logins} time(s) (a human trust or MFA)` });
    for (const c of a.crossings) out.push({ code: 'identity.environment_crossing', severity: 'high', subject: i.id, message: `${i.id} (${i.environment}) was allowed ${c.allows} time(s) on ${c.resource} in ${c.environment}` });
  }
  if (p.activity) {
    const seen = new Map(p.activity.map((a) => [a.identity_id, a.last_allowed_at]));
    for (const i of active.values()) {
      if (p.now - Date.parse(i.created_at) < unused) continue;
      const last = seen.get(i.id) ?? null;
      if (last === null || p.now - Date.parse(last) >= unused) out.push({ code: 'identity.unused', severity: 'medium', subject: i.id, message: `${i.id} was allowed nothing for ${days(unused)} days${last ? ` (last on ${last})` : ''}` });
    }
  }
  for (const u of p.usage ?? []) {
    if (!active.has(u.identity) || u.effective < 4 || u.over_privilege < (p.overPrivilege ?? 0.5)) continue;
    out.push({ code: 'identity.over_privileged', severity: 'medium', subject: u.identity, message: `${u.identity} used ${u.used} of its ${u.effective} permissions (${Math.round(u.over_privilege * 100)} % unused)` });
  }
}
