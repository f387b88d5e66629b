// `portcullis keys …` and `portcullis sessions revoke`: signing keys and sessions.
import type { Command } from 'commander';
import { api } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';
import { registerGatewaySessions } from './gateway-sessions.ts';
import { registerPlay } from './ssh.ts';

/** A key as /v1/keys answers it (RFC 3339 times; null when not set). */
interface KeyInfo {
  kid: string;
  purpose: string;
  status: string;
  created_at?: string;
  retire_at?: string | null;
}

/** A time from the API (RFC 3339) as printed; '-' when absent or not a time. */
export function when(t: unknown): string {
  return typeof t === 'string' && !Number.isNaN(Date.parse(t)) ? new Date(t).toISOString() : '-';
}

export function register(program: Command): void {
  const keys = program.command('keys').description("the broker's signing keys");
  keys.command('list').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/keys'));
    out(!!o.json, r, () => table(r.keys.map((k) => ({ ...k, created: when(k.created_at), retires: when(k.retire_at) })), ['kid', 'purpose', 'status', 'created', 'retires']));
  });
  keys
    .command('rotate')
    .argument('<purpose>', 'session | audit | token')
    .addOption(json())
    .action(async (purpose: string, o: { json?: boolean }) => {
      const r = (await api((c) => c.POST('/v1/keys/rotate', { body: { purpose: purpose as 'session' | 'audit' | 'token' } }))) as { active: KeyInfo; previous: KeyInfo | null };
      out(!!o.json, r, () => `new ${purpose} key ${r.active.kid}${r.previous ? `; ${r.previous.kid} ${r.previous.retire_at == null ? 'keeps verifying' : `keeps verifying until ${when(r.previous.retire_at)}`}` : ''}`);
    });

  const sessions = program.command('sessions').description('revoke login sessions; list, show, verify and terminate gateway sessions');
  registerGatewaySessions(sessions);
  registerPlay(sessions);
  sessions
    .command('revoke')
    .option('--jti <jti>')
    .option('--identity <id>')
    .option('--reason <text>')
    .addOption(json())
    .action(async (o: { jti?: string; identity?: string; reason?: string; json?: boolean }) => {
      const r = (await api((c) => c.POST('/v1/sessions/revoke', { body: { ...(o.jti && { jti: o.jti }), ...(o.identity && { identity: o.identity }), ...(o.reason && { reason: o.reason }) } }))) as { revoked: string };
      out(!!o.json, r, () => `revoked ${r.revoked}`);
    });
}
