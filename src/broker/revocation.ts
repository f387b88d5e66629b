// Revocation by selector: one request ends the matching leases and session tokens.
import type { AuditLog } from '../audit/log.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import { parseSelector } from '../credentials/index.ts';
import type { CredentialService, RevocationSelector } from '../credentials/index.ts';
import type { SessionContext } from './types.ts';

export interface RevocationDeps {
  identities: IdentityRegistry;
  sessions: SessionService;
  credentials: CredentialService;
  audit: AuditLog;
}

export interface RevocationResult {
  selector: RevocationSelector;
  leases: { matched: number; revoked: number; failed: { lease: string; error: string }[] };
  sessions: string[];
}

/**
 * Revokes everything a selector matches: leases (their live database sessions end), and the
 * session tokens of the identities it names. One admin event per revoked item.
 */
export async function revokeBySelector(d: RevocationDeps, by: SessionContext | 'system', raw: unknown, reason: string): Promise<RevocationResult> {
  const selector = parseSelector(raw);
  const actor = by === 'system' ? 'system' : by.identity.id;
  const sessions: string[] = [];
  const identities =
    'identity' in selector ? [selector.identity]
    : 'owner' in selector ? d.identities.list({ owner: selector.owner }).map((i) => i.id)
    : 'trust' in selector ? d.identities.list().filter((i) => i.trust === selector.trust).map((i) => i.id)
    : [];
  for (const id of identities) {
    await d.sessions.revokeIdentity(id);
    sessions.push(`every session of ${id}`);
    await d.audit.append({ stream: 'admin', type: 'session.revoked', actor, subject: id, payload: { selector, reason } });
  }
  if ('session' in selector) {
    await d.sessions.revokeJti(selector.session);
    sessions.push(`session ${selector.session}`);
    await d.audit.append({ stream: 'admin', type: 'session.revoked', actor, payload: { jti: selector.session, reason } });
  }
  const r = await d.credentials.revoke(selector, { by: actor, reason });
  return { selector, leases: { matched: r.matched, revoked: r.revoked.length, failed: r.failed.map((f) => ({ lease: f.leaseId, error: f.error ?? 'unknown' })) }, sessions };
}
