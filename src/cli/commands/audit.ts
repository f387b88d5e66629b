// `portcullis audit …`: query, follow, export and verify the audit streams.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import type { JsonWebKey } from 'node:crypto';
import type { PublicKeyResolver } from '../../audit/types.ts';
import type { AuditReader } from '../../audit/ports.ts';
import type { AuditVerificationDto } from '../../server/dto.ts';
import { CliError, EXIT, api } from '../client.ts';
import type { ApiQuery } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const audit = program.command('audit').description('the authn, authz, admin and session audit streams');
  // The streams of src/audit/types.ts AUDIT_STREAMS, named here: registering commands loads no domain module.
  for (const stream of ['authn', 'authz', 'admin', 'session'] as const) {
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
          const query = Object.fromEntries(q) as ApiQuery<'/v1/audit/{stream}', 'get'>;
          const body = (await api((c) => c.GET('/v1/audit/{stream}', { params: { path: { stream }, query }, parseAs: 'stream' }))) as ReadableStream<Uint8Array> | null;
          if (!body) throw new CliError('the server sent no event stream', EXIT.failure);
          for await (const chunk of body) process.stdout.write(o.json || o.export ? chunk : humanEvents(Buffer.from(chunk).toString()));
          return;
        }
        q.set('limit', o.limit);
        const query = Object.fromEntries(q) as ApiQuery<'/v1/audit/{stream}', 'get'>;
        // JSON (not the ndjson export): the events.
        const r = (await api((c) => c.GET('/v1/audit/{stream}', { params: { path: { stream }, query } }))) as { events: Record<string, unknown>[] };
        out(!!o.json, r, () => table(r.events.map(flatEvent), ['seq', 'time', 'type', 'actor', 'decision', 'detail']));
      });
  }
  audit
    .command('verify')
    .description('verify hash chains and signed checkpoints (online, or offline: --data DIR for SQLite, --store-url for PostgreSQL)')
    .option('--data <dir>', 'verify the data directory directly (offline)')
    .option('--store-url <url>', 'verify a PostgreSQL store directly (offline), e.g. postgres://auditor@db/portcullis — the password from PGPASSWORD or ~/.pgpass, never the command line')
    .option('--store-url-env <name>', 'the same, with the whole URL in this environment variable')
    .option('--witness <file>', 'offline: also check every stream against the checkpoints witnessed in FILE (the witness file or what the witness URL received, one JSON line each)')
    .option('--keys <jwks-file>', 'offline: checkpoint public keys from this JWKS file instead of the store')
    .addOption(json())
    .action(async (o: { data?: string; storeUrl?: string; storeUrlEnv?: string; witness?: string; keys?: string; json?: boolean }) => {
      const offline = [o.data, o.storeUrl, o.storeUrlEnv].filter((x) => x !== undefined).length;
      if (offline > 1) throw new CliError('give one of --data, --store-url and --store-url-env', EXIT.usage);
      if ((o.witness || o.keys) && offline === 0) throw new CliError('--witness and --keys need --data DIR or --store-url (online, the server uses its configured witness)', EXIT.usage);
      let r: AuditVerificationDto;
      if (offline > 0) {
        // Loaded only here: the verifier and key readers are not part of every CLI start.
        const [{ verifyAll }, { readWitnessFile }, { auditVerificationDto }] = await Promise.all([import('../../audit/verify.ts'), import('../../audit/witness.ts'), import('../../server/dto.ts')]);
        // The store read-only: nothing is migrated or written, no master key is needed.
        const opened = o.data !== undefined ? await openSqlite(resolve(o.data)) : await openPostgres(storeUrl(o));
        try {
          const keys = o.keys ? jwksFileResolver(resolve(o.keys)) : await opened.keys();
          // The witness is read first: it must never be newer than the store it is compared with.
          const witness = o.witness ? await readWitnessFile(resolve(o.witness), keys) : undefined;
          // The same wire form as GET /v1/audit/verify, so --json reads alike online and offline.
          r = auditVerificationDto(await verifyAll(opened.reader, keys, { parallel: true, ...(witness && { witness }) }));
        } finally {
          await opened.close();
        }
      } else {
        r = await api((c) => c.GET('/v1/audit/verify'));
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

/** `--store-url` (no password in it: the command line is visible to every user) or `--store-url-env`. */
function storeUrl(o: { storeUrl?: string; storeUrlEnv?: string }): string {
  if (o.storeUrlEnv !== undefined) {
    const url = process.env[o.storeUrlEnv];
    if (!url) throw new CliError(`environment variable ${o.storeUrlEnv} is not set`, EXIT.usage);
    return url;
  }
  const url = o.storeUrl!;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError('--store-url must be a postgres:// URL', EXIT.usage);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw new CliError('--store-url must be a postgres:// URL', EXIT.usage);
  if (parsed.password) throw new CliError('--store-url must not carry a password (the command line is visible to other users): set PGPASSWORD, use ~/.pgpass, or put the URL in a variable named by --store-url-env', EXIT.usage);
  return url;
}

interface OfflineStore {
  reader: AuditReader;
  keys(): Promise<PublicKeyResolver>;
  close(): Promise<void>;
}

async function openSqlite(dir: string): Promise<OfflineStore> {
  const [{ openAuditReader }, { offlinePublicKeyResolverForDataDir }] = await Promise.all([import('../../store/sqlite/audit/offline.ts'), import('../../crypto/offline.ts')]);
  const keys = await offlinePublicKeyResolverForDataDir(dir);
  const reader = openAuditReader(dir);
  return { reader, keys: async () => keys, close: async () => reader.close() };
}

async function openPostgres(url: string): Promise<OfflineStore> {
  const [{ openPgVerification }, { publicKeyResolver }] = await Promise.all([import('../../store/postgres/offline.ts'), import('../../crypto/offline.ts')]);
  const v = await openPgVerification(url);
  return { reader: v.reader, keys: () => publicKeyResolver(v.keys), close: v.close };
}
