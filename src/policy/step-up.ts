// Step-up authentication. A policy marks what a fresh login would fix with annotations on a forbid:
//
//   @id("prod-admin-needs-recent-mfa") @stepUp("mfa") @maxAuthAge("300")
//   forbid (principal, action == Action::"db.admin", resource)
//   unless { context.authn.mfa && context.authn.authAgeSeconds <= 300 };
//
// When every forbid that determined a deny carries such an annotation, re-authenticating can turn
// the deny into an allow, so the API answers `step_up_required` naming what to bring back (RFC 9470
// style); any unannotated determining forbid, or a deny with no forbid, stays a plain 403.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PortcullisError } from '../common/errors.ts';

export interface StepUpRequirement {
  mfa: boolean;
  /** Seconds: the login must be at most this old (OIDC `max_age`). */
  max_age?: number;
}

export type StepUpIndex = ReadonlyMap<string, StepUpRequirement>;

/** 401 with a stable code; the CLI re-runs login with prompt=login/max_age and retries. */
export class StepUpRequired extends PortcullisError {
  readonly required: StepUpRequirement;
  constructor(required: StepUpRequirement, extra: Record<string, unknown> = {}) {
    const what = [required.mfa ? 'multi-factor authentication' : '', required.max_age !== undefined ? `a login within the last ${required.max_age} s` : '']
      .filter(Boolean)
      .join(' and ');
    super('step_up_required', 401, `step-up authentication required: ${what || 'a fresh login'}`, { required, ...extra });
    this.required = required;
  }

  /** `WWW-Authenticate` value per RFC 9470. */
  wwwAuthenticate(mfaAcr?: string): string {
    const parts = ['Bearer error="insufficient_user_authentication"', `error_description="${this.message.replace(/"/g, "'")}"`];
    if (this.required.mfa && mfaAcr) parts.push(`acr_values="${mfaAcr}"`);
    if (this.required.max_age !== undefined) parts.push(`max_age=${this.required.max_age}`);
    return parts.join(', ');
  }
}

/** Reads `@stepUp` / `@maxAuthAge` from each policy's annotations (via cedar-wasm). */
export function stepUpIndex(policies: readonly { id: string; text: string }[]): StepUpIndex {
  const out = new Map<string, StepUpRequirement>();
  for (const p of policies) {
    const r = cedar.policyToJson(p.text);
    if (r.type !== 'success') continue; // the policy set was validated on activation; skip anything odd
    const json = r.json as { effect: string; annotations?: Record<string, string | null> };
    const a = json.annotations ?? {};
    if (json.effect !== 'forbid' || (!('stepUp' in a) && !('maxAuthAge' in a))) continue;
    const kinds = String(a.stepUp ?? '').split(/[\s,]+/).filter(Boolean);
    const req: StepUpRequirement = { mfa: kinds.includes('mfa') };
    if (a.maxAuthAge != null) {
      const n = Number(a.maxAuthAge);
      if (!Number.isInteger(n) || n <= 0) continue; // malformed: not actionable, stays a plain deny
      req.max_age = n;
    }
    if (!req.mfa && req.max_age === undefined) {
      if (!kinds.includes('reauth')) continue;
      req.max_age = 0;
    }
    out.set(p.id, req);
  }
  return out;
}

/** What to demand for this decision, or undefined when a fresh login would not help. */
export function stepUpFor(decision: { decision: 'allow' | 'deny'; reasons: readonly string[] }, index: StepUpIndex): StepUpRequirement | undefined {
  if (decision.decision !== 'deny' || decision.reasons.length === 0) return undefined;
  let merged: StepUpRequirement | undefined;
  for (const id of decision.reasons) {
    const r = index.get(id);
    if (!r) return undefined;
    merged = {
      mfa: (merged?.mfa ?? false) || r.mfa,
      ...((r.max_age ?? merged?.max_age) !== undefined && { max_age: Math.min(r.max_age ?? Infinity, merged?.max_age ?? Infinity) }),
    };
  }
  return merged;
}
