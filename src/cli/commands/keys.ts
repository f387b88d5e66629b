// `portcullis keys …` and `portcullis sessions revoke`: signing keys and sessions.
import type { Command } from 'commander';
import { call } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const keys = program.command('keys').description("the broker's signing keys");
  keys.command('list').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await call<{ keys: Record<string, unknown>[] }>('GET', '/v1/keys');
    out(!!o.json, r, () => table(r.keys, ['kid', 'purpose', 'status', 'created_at', 'retire_at']));
  });
  keys
    .command('rotate')
    .argument('<purpose>', 'session | audit | token')
    .addOption(json())
    .action(async (purpose: string, o: { json?: boolean }) => {
      const r = await call<{ active: { kid: string }; previous?: { kid: string; retire_at?: unknown } }>('POST', '/v1/keys/rotate', { body: { purpose } });
      out(!!o.json, r, () => `new ${purpose} key ${r.active.kid}${r.previous ? `; ${r.previous.kid} keeps verifying until ${String(r.previous.retire_at)}` : ''}`);
    });

  program
    .command('sessions')
    .description('revoke sessions')
    .command('revoke')
    .option('--jti <jti>')
    .option('--identity <id>')
    .option('--reason <text>')
    .addOption(json())
    .action(async (o: { jti?: string; identity?: string; reason?: string; json?: boolean }) => {
      const r = await call<{ revoked: string }>('POST', '/v1/sessions/revoke', { body: { ...(o.jti && { jti: o.jti }), ...(o.identity && { identity: o.identity }), ...(o.reason && { reason: o.reason }) } });
      out(!!o.json, r, () => `revoked ${r.revoked}`);
    });
}
