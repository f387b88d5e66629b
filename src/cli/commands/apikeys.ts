// `portcullis apikeys …`: legacy API keys.
import type { Command } from 'commander';
import { api } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const apikeys = program.command('apikeys').description('legacy API keys (tracked, expiring, marked as weaker)');
  apikeys
    .command('mint')
    .requiredOption('--identity <id>')
    .requiredOption('--ttl <duration>', 'e.g. 30d (mandatory expiry)')
    .option('--rotate-after <duration>', 'rotation due date')
    .option('--description <text>')
    .addOption(json())
    .action(async (o: { identity: string; ttl: string; rotateAfter?: string; description?: string; json?: boolean }) => {
      const body = { identity: o.identity, ttl: o.ttl, ...(o.rotateAfter && { rotate_after: o.rotateAfter }), ...(o.description && { description: o.description }) };
      const r = await api((c) => c.POST('/v1/apikeys', { body }));
      out(!!o.json, r, () => `${String(r.api_key)}\n\nkey ${String(r.id)} for ${o.identity}, expires ${String(r.expires_at)}. Store it now: it is shown once.`);
    });
  apikeys.command('list').option('--identity <id>').addOption(json()).action(async (o: { identity?: string; json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/apikeys', { params: { query: o.identity ? { identity: o.identity } : {} } }));
    out(!!o.json, r, () => table(r.apikeys, ['id', 'identity_id', 'status', 'expires_at', 'rotate_by', 'last_used_at']));
  });
  apikeys.command('rotate').argument('<key-id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
    const r = await api((c) => c.POST('/v1/apikeys/{id}/rotate', { params: { path: { id } } }));
    out(!!o.json, r, () => `${String(r.api_key)}\n\nnew key ${String(r.id)} replaces ${id}. Store it now: it is shown once.`);
  });
  apikeys.command('revoke').argument('<key-id>').option('--reason <text>').addOption(json()).action(async (id: string, o: { reason?: string; json?: boolean }) => {
    const r = await api((c) => c.POST('/v1/apikeys/{id}/revoke', { params: { path: { id } }, body: { reason: o.reason ?? '' } }));
    out(!!o.json, r, () => `revoked ${id}`);
  });
}
