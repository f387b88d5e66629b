// Human-readable status lines for the CLI and API ("waiting for 2 approvals: alice (approved),
// bob (pending) — expires in 52 min").
import type { AccessRequest, Grant } from './types.ts';

function humanDuration(ms: number): string {
  if (ms <= 0) return '0 min';
  const min = Math.ceil(ms / 60_000);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  const m = min % 60;
  if (h < 48) return m === 0 ? `${h} h` : `${h} h ${m} min`;
  return `${Math.round(h / 24)} d`;
}

/** `user:alice@example.com` → `alice@example.com`. */
const short = (id: string): string => id.replace(/^user:/, '');

export function requestStatusLine(r: AccessRequest, now: number, grant?: Grant): string {
  switch (r.status) {
    case 'pending': {
      const approvals = r.reviews.filter((v) => v.verdict === 'approve');
      const names = new Map<string, string>();
      for (const v of approvals) names.set(v.reviewer, 'approved');
      for (const s of r.reviewers) if (!names.has(s) && s !== r.requester) names.set(s, 'pending');
      const people = [...names].map(([who, st]) => `${short(who)} (${st})`).join(', ');
      const missing = r.required_approvals - approvals.length;
      const head = r.required_approvals === 1 ? 'waiting for 1 approval' : `waiting for ${r.required_approvals} approvals`;
      const more = approvals.length > 0 ? ` (${missing} more needed)` : '';
      return `${head}${more}${people ? `: ${people}` : ''} — expires in ${humanDuration(Date.parse(r.expires_at) - now)}`;
    }
    case 'approved': {
      const by = r.reviews.filter((v) => v.verdict === 'approve').map((v) => short(v.reviewer)).join(', ');
      if (!grant) return `approved by ${by}`;
      return `approved by ${by}; ${grantStatusLine(grant, now)}`;
    }
    case 'denied': {
      const d = r.reviews.find((v) => v.verdict === 'deny');
      return `denied${d ? ` by ${short(d.reviewer)}${d.comment ? `: ${d.comment}` : ''}` : ''}`;
    }
    case 'cancelled':
      return 'cancelled by the requester';
    case 'expired':
      return `expired without enough approvals (${r.reviews.filter((v) => v.verdict === 'approve').length} of ${r.required_approvals})`;
  }
}

export function grantStatusLine(g: Grant, now: number): string {
  if (g.status === 'ended') return `grant ended ${g.end_reason ? `(${g.end_reason})` : ''}`.trim();
  const start = Date.parse(g.start_at);
  const end = Date.parse(g.end_at);
  if (now < start) return `grant starts in ${humanDuration(start - now)}`;
  if (now >= end) return 'grant has expired';
  return `grant active — ends in ${humanDuration(end - now)}`;
}
