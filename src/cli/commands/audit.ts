// `portcullis audit …`: query, follow, export and verify the audit streams.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import type { JsonWebKey } from 'node:crypto';
import type { PublicKeyResolver } from '../../audit/types.ts';
import type { AuditVerificationDto } from '../../server/dto.ts';
import { CliError, EXIT, address, call, sessionToken } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const audit = program.command('audit').description('the authn, authz and admin audit streams');
  for (const stream of ['authn', 'authz', 'admin'] as const) {
    audit
      .command(stream)
      .description(`query the ${stream} stream`)
      .option('--identity <id>')
      .option('--boundary <b>')
      .option('--decision <allow|deny>')
      .option('--since <time>')
      .option('--limit <n>', 'at most', '50')
      .option('-f, --follow', 'stream new events as they happen')
      .option('--export', 'all matching events as JSON lines')
      .addOption(json())
      .action(async (o: { identity?: string; boundary?: string; decision?: string; since?: string; limit: string; follow?: boolean; export?: boolean; json?: boolean }) => {
        const q = new URLSearchParams();
        for (const k of ['identity', 'boundary', 'decision', 'since'] as const) if (o[k]) q.set(k, o[k]!);
        if (o.follow || o.export) {
          q.set(o.follow ? 'follow' : 'format', o.follow ? 'true' : 'ndjson');
            const res = await fetch(`${address()}/v1/audit/${stream}?${q}`, { headers: { authorization: `Bearer ${sessionToken()}` } });
          if (!res.ok || !res.body) throw new CliError(`${res.status}: ${await res.text()}`, res.status === 403 ? EXIT.denied : EXIT.failure);
          for await (const chunk of res.body) process.stdout.write(o.json || o.export ? chunk : humanEvents(Buffer.from(chunk).toString()));
          return;
        }
        q.set('limit', o.limit);
        const r = await call<{ events: Record<string, unknown>[] }>('GET', `/v1/audit/${stream}?${q}`);
        out(!!o.json, r, () => table(r.events.map(flatEvent), ['seq', 'time', 'type', 'actor', 'decision', 'detail']));
      });
  }
  audit
    .command('verify')
    .description('verify hash chains and signed checkpoints (online, or offline with --data while the server is down)')
    .option('--data <dir>', 'verify the data directory directly (offline)')
    .option('--witness <file>', 'with --data: also check every stream against the checkpoints witnessed in FILE (audit.witness.file)')
    .option('--keys <jwks-file>', 'with --data: checkpoint public keys from this JWKS file instead of the data directory')
    .addOption(json())
    .action(async (o: { data?: string; witness?: string; keys?: string; json?: boolean }) => {
      if ((o.witness || o.keys) && !o.data) throw new CliError('--witness and --keys need --data DIR (online, the server uses its configured witness)', EXIT.usage);
      let r: AuditVerificationDto;
      if (o.data) {
        // Loaded only here: the verifier and key readers are not part of every CLI start.
        const [{ verifyAll }, { readWitnessFile }, { openAuditReader }, { offlinePublicKeyResolverForDataDir }, { auditVerificationDto }] = await Promise.all([
          import('../../audit/verify.ts'), import('../../audit/witness.ts'), import('../../store/sqlite/audit/offline.ts'), import('../../crypto/offline.ts'), import('../../server/dto.ts'),
        ]);
        const dir = resolve(o.data);
        const keys = o.keys ? jwksFileResolver(resolve(o.keys)) : await offlinePublicKeyResolverForDataDir(dir);
        // The witness is read first: it must never be newer than the store it is compared with.
        const witness = o.witness ? await readWitnessFile(resolve(o.witness), keys) : undefined;
        // The store read-only: nothing is migrated or written, no master key is needed.
        const reader = openAuditReader(dir);
        try {
          // The same wire form as GET /v1/audit/verify, so --json reads alike online and offline.
          r = auditVerificationDto(await verifyAll(reader, keys, { parallel: true, ...(witness && { witness }) }));
        } finally {
          reader.close();
        }
      } else {
        r = await call<AuditVerificationDto>('GET', '/v1/audit/verify');
      }
      out(!!o.json, r, () =>
        r.streams
          .map((s) => `${s.ok ? 'ok  ' : 'FAIL'} ${s.stream.padEnd(6)} ${s.events} events, ${s.checkpoints} signed checkpoints${s.witnessed_through !== undefined ? `, witnessed through seq ${s.witnessed_through}` : ''}${s.ok ? '' : ` — first bad seq ${s.first_bad_seq}: ${s.reason}`}`)
          .concat(r.witness ? [`${r.witness.ok ? 'ok  ' : 'FAIL'} witness ${r.witness.source}: ${r.witness.checkpoints} checkpoints${r.witness.ok ? '' : ` — ${r.witness.reason}`}`] : [])
          .join('\n'),
      );
      if (!r.ok) process.exitCode = EXIT.failure;
    });
}

function flatEvent(e: Record<string, unknown>): Record<string, unknown> {
  const p = (e.payload ?? {}) as Record<string, unknown>;
  const detail = e.stream === 'authz' ? `${String(p.action)} ${String(p.resource)} ${(p.reasons as string[] | undefined)?.join(',') ?? ''}` : String(p.reason ?? p.method ?? e.subject ?? '');
  return { ...e, detail };
}

function humanEvents(text: string): string {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const e = flatEvent(JSON.parse(l) as Record<string, unknown>);
      return `${String(e.seq).padStart(6)}  ${String(e.time)}  ${String(e.type)}  ${String(e.actor)}  ${String(e.decision ?? '')}  ${String(e.detail)}`;
    })
    .join('\n')
    .concat('\n');
}

/** A JWKS file (`{"keys": [{kid, kty: "OKP", crv: "Ed25519", x}]}`) as a checkpoint key resolver. */
function jwksFileResolver(path: string): PublicKeyResolver {
  let keys: (JsonWebKey & { kid?: string })[];
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { keys?: unknown };
    if (!Array.isArray(doc.keys)) throw new Error('no "keys" list');
    keys = doc.keys as (JsonWebKey & { kid?: string })[];
  } catch (err) {
    throw new CliError(`--keys ${path}: not a readable JWKS file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, EXIT.usage);
  }
  return (kid) => keys.find((k) => k.kid === kid);
}
