// The `admin` audit event every administrative change records, tied to the session that made it.
import type { AuditLog } from '../audit/log.ts';
import type { AuditEventInput } from '../audit/types.ts';
import type { SessionContext } from './types.ts';

/**
 * One `admin` audit event for a change an API caller made, with the session it was made in
 * (`payload.session`, `payload.authn`: names the caller's own, so a payload may not use them).
 */
export async function recordAdminEvent(audit: AuditLog, by: SessionContext, type: string, payload: Record<string, unknown> & { session?: never; authn?: never }, subject?: string, boundary?: string): Promise<void> {
  const event: AuditEventInput = { stream: 'admin', type, actor: by.identity.id, payload: { ...payload, authn: by.authn.method, session: by.jti } };
  if (subject !== undefined) event.subject = subject;
  if (boundary !== undefined) event.boundary = boundary;
  await audit.append(event);
}
