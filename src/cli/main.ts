// The `portcullis` command: a thin adapter over the HTTP API (and the broker, for `server`/`dev`).
import { Command, Option } from 'commander';
import { readFileSync, rmSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { loadConfigFile } from '../config/load.ts';
import { PortcullisError } from '../common/errors.ts';
import { CliError, EXIT, address, call, clearSession, onStepUp, saveSession } from './client.ts';
import { interactive, ssoLogin } from './sso.ts';
import { out, printJson, table } from './output.ts';
import { serve } from './serve.ts';
import { DEV_DATA, devConfig, devToken } from './dev.ts';
import { verifyDataDir } from '../audit/verify.ts';
import { readPublicKeys } from '../crypto/offline.ts';

const program = new Command('portcullis')
  .description('Portcullis — prove who is asking, decide with Cedar at request time, record everything.')
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions()
  .version('0.1.0');

const json = () => new Option('--json', 'machine-readable JSON output');
const enc = encodeURIComponent;

function parseEntity(text: string): { type: string; id: string } {
  const m = /^([A-Z][A-Za-z0-9_]*)::"?([^"]+)"?$/.exec(text);
  if (!m) throw new CliError(`resource must look like Database::orders or Database::"orders", got "${text}"`, EXIT.usage);
  return { type: m[1]!, id: m[2]! };
}

// ── server & dev ────────────────────────────────────────────────────────────────────────────

program
  .command('server')
  .description('run the control plane from a configuration file')
  .requiredOption('-c, --config <file>', 'portcullis.yaml')
  .action(async (o: { config: string }) => {
    const loaded = loadConfigFile(o.config);
    const running = await serve(loaded);
    const secret = await running.broker.bootstrap();
    process.stderr.write(`portcullis listening on ${running.url} (policy version ${running.broker.decisions.version?.version}, engine ${loaded.config.engine})\n`);
    if (secret) {
      process.stderr.write(
        `\nFirst start: a one-time bootstrap credential for the first administrator (user:admin).\n` +
          `It works once; use it to mint your own credentials, then it is spent:\n\n  portcullis login --bootstrap ${secret}\n\n`,
      );
    }
    stopOnSignal(running.stop);
  });

const dev = program
  .command('dev')
  .description('run a local development server with a demo setup (npm start)')
  .enablePositionalOptions()
  .option('--data <dir>', 'data directory', DEV_DATA)
  .option('--port <port>', 'port', '7070')
  .option('--fresh', 'start from an empty data directory')
  .action(async (o: { data: string; port: string; fresh?: boolean }) => {
    const dataDir = resolve(o.data);
    if (o.fresh) rmSync(dataDir, { recursive: true, force: true });
    const running = await serve(devConfig(dataDir, Number(o.port)));
    const cli = `${resolve(import.meta.dirname, '..', '..', 'bin', 'portcullis.js')}`;
    process.stdout.write(`
Portcullis dev server on ${running.url}
  data:     ${dataDir}  (audit, keys, identities; --fresh to reset)
  policies: examples/dev/policies/demo.cedar  (policy version ${running.broker.decisions.version?.version})
  API:      ${running.url}/openapi.json

Try this next, in another terminal:

  alias portcullis=${cli}
  export PORTCULLIS_ADDR=${running.url}

  # 1. a CI workload proves itself with an OIDC token from the dev issuer
  portcullis login --token "$(portcullis dev token --sub repo:acme/api)"

  # 2. ask for decisions — purpose, time window, boundary
  portcullis authorize db.select Database::orders --reason "monthly report"    # allow
  portcullis authorize db.select Database::orders                              # deny: no purpose
  portcullis authorize db.insert Table::orders.payments --ticket OPS-12       # allow 06–22 UTC
  portcullis authorize db.select Database::analytics --reason "curious"        # deny: boundary guard

  # 3. an administrator looks at the audit trail and the inventory
  portcullis login --token "$(portcullis dev token --user admin@example.com)"
  portcullis audit authz
  portcullis identities list
  portcullis audit verify

Ctrl-C stops the server.
`);
    stopOnSignal(running.stop);
  });

dev
  .command('token')
  .description('print a signed token from the built-in development OIDC issuer')
  .option('--sub <sub>', 'workload subject (GitHub Actions style)', 'repo:acme/api')
  .option('--user <email>', 'a human user instead (dev SSO issuer)')
  .option('--agent <name>', 'an AI agent instead')
  .option('--claim <k=v...>', 'extra claims')
  .option('--ttl <seconds>', 'lifetime', '300')
  .option('--data <dir>', 'data directory of the dev server', DEV_DATA)
  .option('--port <port>', 'port of the dev server', new URL(address()).port || '7070')
  .action(async (o: { sub: string; user?: string; agent?: string; claim?: string[]; ttl: string; data: string; port: string }) => {
    const claims = Object.fromEntries((o.claim ?? []).map((c) => {
      const i = c.indexOf('=');
      if (i < 1) throw new CliError(`--claim must be key=value, got "${c}"`, EXIT.usage);
      return [c.slice(0, i), c.slice(i + 1)];
    }));
    process.stdout.write(`${await devToken(resolve(o.data), Number(o.port), { sub: o.sub, ...(o.user && { user: o.user }), ...(o.agent && { agent: o.agent }), claims, ttlSeconds: Number(o.ttl) })}\n`);
  });

// ── login ───────────────────────────────────────────────────────────────────────────────────

const log = (m: string) => process.stderr.write(`${m}\n`);

program
  .command('login')
  .description('sign in: --sso (your organisation\'s identity provider, in a browser or --device), or exchange a proof; the session is saved for later commands')
  .option('--sso', 'human sign-in through the oidc-human trust (browser with a loopback redirect)')
  .option('--device', 'with --sso: the device-code flow, for machines without a browser')
  .option('--step-up', 'with --sso: sign in again now with multi-factor authentication (prompt=login, max_age)')
  .option('--max-age <seconds>', 'with --step-up: how recent the login must be', '300')
  .option('--trust <name>', 'with --sso: which oidc-human trust, when several are configured')
  .option('--login-hint <email>', 'with --sso: pre-fill the account at the provider')
  .option('--redirect-port <port>', 'with --sso: fixed loopback port for the redirect (default: any free port)')
  .option('--token <jwt>', 'a workload/OIDC token or JWT-SVID')
  .option('--api-key <key>', 'a Portcullis API key (legacy)')
  .option('--bootstrap <secret>', 'the one-time bootstrap credential')
  .addOption(json())
  .action(async (o: { sso?: boolean; device?: boolean; stepUp?: boolean; maxAge: string; trust?: string; loginHint?: string; redirectPort?: string; token?: string; apiKey?: string; bootstrap?: string; json?: boolean }) => {
    const given = [o.token, o.apiKey, o.bootstrap, o.sso || undefined].filter((x) => x !== undefined);
    if (given.length !== 1) throw new CliError('give exactly one of --sso, --token, --api-key, --bootstrap', EXIT.usage);
    if (!o.sso && (o.device || o.stepUp || o.trust || o.loginHint || o.redirectPort)) throw new CliError('--device, --step-up, --trust, --login-hint and --redirect-port go with --sso', EXIT.usage);
    if (o.sso) {
      const maxAge = Number(o.maxAge);
      if (!Number.isInteger(maxAge) || maxAge < 0) throw new CliError('--max-age must be a number of seconds', EXIT.usage);
      const port = o.redirectPort === undefined ? undefined : Number(o.redirectPort);
      if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new CliError('--redirect-port must be a port number', EXIT.usage);
      const { login, path } = await ssoLogin({
        ...(o.device && { device: true }),
        ...(o.trust && { trust: o.trust }),
        ...(o.loginHint && { loginHint: o.loginHint }),
        ...(port !== undefined && { port }),
        ...(o.stepUp && { stepUp: { mfa: true, max_age: maxAge } }),
        log,
      });
      out(!!o.json, login, () => `logged in as ${login.identity.id} until ${login.expires_at}${o.stepUp ? ' (stepped up)' : ''}\nsession saved in ${path}`);
      return;
    }
    const body = o.token !== undefined ? { token: o.token } : o.apiKey !== undefined ? { api_key: o.apiKey } : { bootstrap: o.bootstrap };
    const r = await call<{ session_token: string; expires_at: string; identity: { id: string; kind: string; boundary: string } }>('POST', '/v1/auth/token', { body, auth: false });
    const path = saveSession({ addr: address(), session_token: r.session_token, expires_at: r.expires_at, identity: r.identity.id });
    out(!!o.json, r, () => `logged in as ${r.identity.id} (${r.identity.kind}, boundary ${r.identity.boundary}) until ${r.expires_at}\nsession saved in ${path}`);
  });

program.command('logout').description('revoke and forget the saved session').action(async () => {
  try {
    await call('POST', '/v1/sessions/revoke', { body: { jti: JSON.parse(Buffer.from(process.env.PORTCULLIS_TOKEN ?? sessionPayload(), 'base64url').toString()).jti } });
  } catch {
    /* already expired or server gone: forgetting it is still right */
  }
  clearSession();
  process.stdout.write('logged out\n');
});

function sessionPayload(): string {
  const token = (JSON.parse(readFileSync(resolve(process.env.PORTCULLIS_HOME ?? `${process.env.HOME}/.portcullis`, 'session.json'), 'utf8')) as { session_token: string }).session_token;
  return token.split('.')[1]!;
}

// ── authorize ───────────────────────────────────────────────────────────────────────────────

program
  .command('authorize')
  .description('ask for a decision: exit 0 on allow, 3 on deny')
  .argument('<action>', 'e.g. db.select')
  .argument('<resource>', 'e.g. Database::orders')
  .option('--reason <text>', 'purpose: why')
  .option('--ticket <ref>', 'purpose: ticket reference')
  .option('--context <json>', 'extra context declared by the schema for this action')
  .addOption(json())
  .action(async (action: string, resource: string, o: { reason?: string; ticket?: string; context?: string; json?: boolean }) => {
    let extra: Record<string, unknown> = {};
    if (o.context) {
      try {
        extra = JSON.parse(o.context) as Record<string, unknown>;
      } catch {
        throw new CliError('--context must be a JSON object', EXIT.usage);
      }
    }
    const purpose = { ...(o.reason !== undefined && { reason: o.reason }), ...(o.ticket !== undefined && { ticket: o.ticket }) };
    const d = await call<{ decision: string; reasons: string[]; errors: { policy_id: string; message: string }[]; decision_id: string; policy_version: number }>('POST', '/v1/authorize', {
      body: { action, resource: parseEntity(resource), context: { ...extra, purpose } },
    });
    out(!!o.json, d, () => {
      const why = d.reasons.length > 0 ? `by ${d.reasons.join(', ')}` : d.decision === 'deny' ? 'no policy permits it' : '';
      const errs = d.errors.length > 0 ? `\n  policy errors: ${d.errors.map((e) => `${e.policy_id}: ${e.message}`).join('; ')}` : '';
      return `${d.decision.toUpperCase()}  ${action} on ${resource}  ${why}\n  decision ${d.decision_id} · policy version ${d.policy_version}${errs}`;
    });
    if (d.decision !== 'allow') process.exitCode = EXIT.denied;
  });

// ── identities ──────────────────────────────────────────────────────────────────────────────

const identities = program.command('identities').description('the inventory of identities');
identities
  .command('list')
  .option('--kind <kind>')
  .option('--boundary <b>')
  .option('--owner <owner>')
  .option('--status <status>')
  .addOption(json())
  .action(async (o: Record<string, string | boolean | undefined>) => {
    const q = new URLSearchParams();
    for (const k of ['kind', 'boundary', 'owner', 'status']) if (typeof o[k] === 'string') q.set(k, o[k] as string);
    const r = await call<{ identities: Record<string, unknown>[] }>('GET', `/v1/identities${q.size ? `?${q}` : ''}`);
    out(!!o.json, r, () => table(r.identities, ['id', 'kind', 'boundary', 'environment', 'owner', 'status', 'last_authenticated_at']));
  });
identities.command('show').argument('<id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
  const r = await call('GET', `/v1/identities/${enc(id)}`);
  out(!!o.json, r, () => Object.entries(r).map(([k, v]) => `${k.padEnd(22)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
});
identities
  .command('declare')
  .argument('<id>')
  .requiredOption('--kind <kind>', 'workload | agent | service-account | user')
  .requiredOption('--boundary <b>')
  .requiredOption('--environment <env>')
  .option('--owner <owner>')
  .option('--purpose <text>')
  .addOption(json())
  .action(async (id: string, o: { kind: string; boundary: string; environment: string; owner?: string; purpose?: string; json?: boolean }) => {
    const { json: j, ...body } = o;
    const r = await call('POST', '/v1/identities', { body: { id, ...body } });
    out(!!j, r, () => `declared ${id}`);
  });
identities
  .command('update')
  .argument('<id>')
  .option('--owner <owner>')
  .option('--purpose <text>')
  .option('--label <k=v...>', 'replace labels')
  .addOption(json())
  .action(async (id: string, o: { owner?: string; purpose?: string; label?: string[]; json?: boolean }) => {
    const body: Record<string, unknown> = {};
    if (o.owner !== undefined) body.owner = o.owner;
    if (o.purpose !== undefined) body.purpose = o.purpose;
    if (o.label) body.labels = Object.fromEntries(o.label.map((l) => l.split('=', 2)));
    const r = await call('PATCH', `/v1/identities/${enc(id)}`, { body });
    out(!!o.json, r, () => `updated ${id}`);
  });
for (const verb of ['suspend', 'activate', 'offboard'] as const) {
  identities
    .command(verb)
    .argument('<id>')
    .option('--reason <text>')
    .addOption(json())
    .action(async (id: string, o: { reason?: string; json?: boolean }) => {
      const r = await call<{ status: string }>('POST', `/v1/identities/${enc(id)}/${verb}`, { body: { reason: o.reason ?? '' } });
      out(!!o.json, r, () => `${id} is now ${r.status}${verb === 'activate' ? '' : '; its live sessions have ended'}`);
    });
}

// ── API keys ────────────────────────────────────────────────────────────────────────────────

const apikeys = program.command('apikeys').description('legacy API keys (tracked, expiring, marked as weaker)');
apikeys
  .command('mint')
  .requiredOption('--identity <id>')
  .requiredOption('--ttl <duration>', 'e.g. 30d (mandatory expiry)')
  .option('--rotate-after <duration>', 'rotation due date')
  .option('--description <text>')
  .addOption(json())
  .action(async (o: { identity: string; ttl: string; rotateAfter?: string; description?: string; json?: boolean }) => {
    const r = await call<Record<string, unknown>>('POST', '/v1/apikeys', {
      body: { identity: o.identity, ttl: o.ttl, ...(o.rotateAfter && { rotate_after: o.rotateAfter }), ...(o.description && { description: o.description }) },
    });
    out(!!o.json, r, () => `${String(r.api_key)}\n\nkey ${String(r.id)} for ${o.identity}, expires ${String(r.expires_at)}. Store it now: it is shown once.`);
  });
apikeys.command('list').option('--identity <id>').addOption(json()).action(async (o: { identity?: string; json?: boolean }) => {
  const r = await call<{ apikeys: Record<string, unknown>[] }>('GET', `/v1/apikeys${o.identity ? `?identity=${enc(o.identity)}` : ''}`);
  out(!!o.json, r, () => table(r.apikeys, ['id', 'identity_id', 'status', 'expires_at', 'rotate_by', 'last_used_at']));
});
apikeys.command('rotate').argument('<key-id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
  const r = await call<Record<string, unknown>>('POST', `/v1/apikeys/${enc(id)}/rotate`);
  out(!!o.json, r, () => `${String(r.api_key)}\n\nnew key ${String(r.id)} replaces ${id}. Store it now: it is shown once.`);
});
apikeys.command('revoke').argument('<key-id>').option('--reason <text>').addOption(json()).action(async (id: string, o: { reason?: string; json?: boolean }) => {
  const r = await call('POST', `/v1/apikeys/${enc(id)}/revoke`, { body: { reason: o.reason ?? '' } });
  out(!!o.json, r, () => `revoked ${id}`);
});

// ── policies ────────────────────────────────────────────────────────────────────────────────

const policies = program.command('policies').description('Cedar policies: show, validate, push');
policies.command('show').addOption(json()).action(async (o: { json?: boolean }) => {
  const r = await call<{ version: number; digest: string; policies: string[]; files: { name: string; origin: string }[] }>('GET', '/v1/policies');
  out(!!o.json, r, () => `policy version ${r.version} (${r.digest.slice(0, 12)})\nfiles: ${r.files.map((f) => `${f.name} [${f.origin}]`).join(', ')}\npolicies:\n  ${r.policies.join('\n  ')}`);
});
policies.command('versions').addOption(json()).action(async (o: { json?: boolean }) => {
  const r = await call<{ versions: Record<string, unknown>[] }>('GET', '/v1/policies/versions');
  out(!!o.json, r, () => table(r.versions, ['version', 'created_at', 'actor', 'reason']));
});
for (const [name, dry] of [
  ['validate', true],
  ['push', false],
] as const) {
  policies
    .command(name)
    .description(dry ? 'validate .cedar files against the schema without activating' : 'activate .cedar files as the API-managed policies (new version)')
    .argument('<files...>')
    .option('--reason <text>', 'why (recorded in the admin audit stream)', dry ? 'validation' : undefined)
    .addOption(json())
    .action(async (files: string[], o: { reason?: string; json?: boolean }) => {
      if (!o.reason) throw new CliError('--reason is required', EXIT.usage);
      const body = { files: files.map((f) => ({ name: basename(f), text: readFileSync(f, 'utf8') })), reason: o.reason, dry_run: dry };
      const r = await call<Record<string, unknown>>('PUT', '/v1/policies', { body });
      out(!!o.json, r, () => (dry ? `valid: ${(r.policies as string[]).length} policies` : r.changed ? `activated policy version ${String(r.version)}` : `unchanged (version ${String(r.version)})`));
    });
}

// ── audit ───────────────────────────────────────────────────────────────────────────────────

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
        const { sessionToken } = await import('./client.ts');
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
  .addOption(json())
  .action(async (o: { data?: string; json?: boolean }) => {
    const r = (o.data
      ? verifyDataDir(resolve(o.data), { fromDb: (db) => { const k = readPublicKeys(db, 'audit'); return (kid) => k.get(kid); } })
      : await call('GET', '/v1/audit/verify')) as { ok: boolean; streams: { stream: string; events: number; checkpoints: number; ok: boolean; firstBadSeq?: number; reason?: string }[] };
    out(!!o.json, r, () =>
      r.streams
        .map((s) => `${s.ok ? 'ok  ' : 'FAIL'} ${s.stream.padEnd(6)} ${s.events} events, ${s.checkpoints} signed checkpoints${s.ok ? '' : ` — first bad seq ${s.firstBadSeq}: ${s.reason}`}`)
        .join('\n'),
    );
    if (!r.ok) process.exitCode = EXIT.failure;
  });

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

// ── credentials, leases, revocation ─────────────────────────────────────────────────────────

const creds = program.command('creds').description('just-in-time credentials, decided by policy and leased');
creds
  .command('issue')
  .description('issue a credential: `creds issue postgres orders-db --perm readonly --ttl 15m --reason …`')
  .argument('<kind>', 'postgres | api')
  .argument('<target>')
  .option('--perm <set>', 'permission set (postgres)')
  .option('--scope <scope...>', 'scopes (api)')
  .option('--ttl <duration>', 'lifetime within the target cap, e.g. 15m')
  .option('--grant <id>', 'the access grant to issue under (default: your active grant for this target)')
  .requiredOption('--reason <text>', 'why (recorded with the lease)')
  .addOption(json())
  .action(async (kind: string, target: string, o: { perm?: string; scope?: string[]; ttl?: string; grant?: string; reason: string; json?: boolean }) => {
    const r = await call<{ lease: Record<string, unknown>; credential: Record<string, unknown> }>('POST', '/v1/credentials', {
      body: { target, reason: o.reason, ...(o.perm && { permission: o.perm }), ...(o.ttl && { ttl: o.ttl }), ...(o.scope && { scopes: o.scope }), ...(o.grant && { grant_id: o.grant }) },
    });
    out(!!o.json, r, () => {
      const c = r.credential;
      const until = new Date(Number(r.lease.expiresAt)).toISOString();
      if (kind === 'postgres') {
        return `${String(c.uri)}\n\nlease ${String(r.lease.id)} (${String(r.lease.permission)}) until ${until}`;
      }
      return `${String(c.access_token ?? JSON.stringify(c))}\n\nlease ${String(r.lease.id)} until ${until}`;
    });
  });
creds
  .command('ssh')
  .description('get an SSH user certificate for a host target, written next to the key')
  .argument('<target>')
  .requiredOption('--key <path>', 'your public key, e.g. ~/.ssh/id_ed25519.pub')
  .option('--ttl <duration>')
  .option('--reason <text>', 'why', 'interactive login')
  .addOption(json())
  .action(async (target: string, o: { key: string; ttl?: string; reason: string; json?: boolean }) => {
    const { writeFileSync } = await import('node:fs');
    const publicKey = readFileSync(o.key, 'utf8').trim();
    const r = await call<{ lease: Record<string, unknown>; credential: Record<string, unknown> }>('POST', '/v1/credentials', {
      body: { target, reason: o.reason, public_key: publicKey, ...(o.ttl && { ttl: o.ttl }) },
    });
    const certPath = o.key.replace(/\.pub$/, '') + '-cert.pub';
    writeFileSync(certPath, `${String(r.credential.certificate)}\n`, { mode: 0o644 });
    out(!!o.json, { ...r, certificate_path: certPath }, () => `certificate written to ${certPath} (lease ${String(r.lease.id)}, principals ${JSON.stringify(r.credential.principals)})`);
  });

program
  .command('leases')
  .description('leases: yours by default; --all, --identity, --target need lease.read')
  .option('--all')
  .option('--identity <id>')
  .option('--target <name>')
  .option('--status <status>')
  .addOption(json())
  .action(async (o: { all?: boolean; identity?: string; target?: string; status?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (!o.all && !o.identity && !o.target) q.set('mine', 'true');
    for (const k of ['identity', 'target', 'status'] as const) if (o[k]) q.set(k, o[k]!);
    const r = await call<{ leases: Record<string, unknown>[] }>('GET', `/v1/leases?${q}`);
    const rows = r.leases.map((l) => ({ ...l, expires: new Date(Number(l.expiresAt)).toISOString() }));
    out(!!o.json, r, () => table(rows, ['id', 'identityId', 'target', 'permission', 'status', 'expires', 'purpose']));
  });

program
  .command('revoke')
  .description('revoke everything matching one selector; live database sessions end at once')
  .option('--lease <id>')
  .option('--identity <id>')
  .option('--owner <owner>', 'every identity this owner owns (offboarding)')
  .option('--target <name>')
  .option('--trust <name>')
  .option('--session <jti>')
  .requiredOption('--reason <text>')
  .addOption(json())
  .action(async (o: Record<string, string | boolean | undefined>) => {
    const keys = ['lease', 'identity', 'owner', 'target', 'trust', 'session'].filter((k) => typeof o[k] === 'string');
    if (keys.length !== 1) throw new CliError('give exactly one of --lease, --identity, --owner, --target, --trust, --session', EXIT.usage);
    const selector = { [keys[0]!]: o[keys[0]!] };
    const r = await call<{ leases: { matched: number; revoked: number; failed: unknown[] }; sessions: string[] }>('POST', '/v1/revocations', { body: { selector, reason: o.reason } });
    out(!!o.json, r, () => `revoked ${r.leases.revoked} of ${r.leases.matched} lease(s)${r.sessions.length ? `; ${r.sessions.join('; ')}` : ''}${r.leases.failed.length ? `\n${r.leases.failed.length} failed and will be retried: ${JSON.stringify(r.leases.failed)}` : ''}`);
    if (r.leases.failed.length > 0) process.exitCode = EXIT.failure;
  });

// ── privileged access: requests, grants, break-glass ────────────────────────────────────────

interface RequestView {
  id: string;
  what: string;
  requester: string;
  status: string;
  status_line: string;
  reason: string;
  ticket: string | null;
  expires_at: string;
  grant_id: string | null;
  reviews: { reviewer: string; verdict: string; at: string; comment: string | null }[];
  comments: { author: string; at: string; text: string }[];
}

const requestLine = (r: RequestView) => `${r.id}  ${r.what}\n  ${r.status_line}`;

program
  .command('request')
  .description('ask for just-in-time access: a role, a resource with actions, or a credential for a target')
  .option('--role <name>', 'a role (temporary membership)')
  .option('--resource <entity>', 'e.g. Database::"orders" (with --action)')
  .option('--action <action...>', 'actions on --resource, e.g. db.admin')
  .option('--target <name>', 'a credential target, e.g. orders-db')
  .option('--permission <set>', 'with --target: the permission set')
  .requiredOption('--for <duration>', 'how long, e.g. 1h (capped by policy)')
  .requiredOption('--reason <text>', 'why')
  .option('--ticket <ref>', 'ticket reference (required by some rules)')
  .option('--start-at <time>', 'ISO-8601 start (default now)')
  .option('--session-bound', 'end the grant when you log out')
  .addOption(json())
  .action(async (o: { role?: string; resource?: string; action?: string[]; target?: string; permission?: string; for: string; reason: string; ticket?: string; startAt?: string; sessionBound?: boolean; json?: boolean }) => {
    const kinds = [o.role, o.resource, o.target].filter((x) => x !== undefined);
    if (kinds.length !== 1) throw new CliError('give exactly one of --role, --resource (with --action) or --target', EXIT.usage);
    if (o.resource !== undefined && !o.action) throw new CliError('--resource needs at least one --action', EXIT.usage);
    const what =
      o.role !== undefined ? { role: o.role }
      : o.resource !== undefined ? { resource: parseEntity(o.resource), actions: o.action }
      : { credential: { target: o.target, ...(o.permission && { permission: o.permission }) } };
    const body = { ...what, duration: o.for, reason: o.reason, ...(o.ticket && { ticket: o.ticket }), ...(o.startAt && { start_at: o.startAt }), ...(o.sessionBound && { session_bound: true }) };
    const r = await call<RequestView>('POST', '/v1/access-requests', { body });
    out(!!o.json, r, () => requestLine(r));
  });

const requests = program.command('requests').description('access requests: list, show, approve, deny, cancel, comment');
requests
  .command('list', { isDefault: true })
  .description('yours by default; --reviewable: the ones waiting for someone like you; --all')
  .option('--reviewable', 'pending requests of others')
  .option('--all', 'everyone\'s (humans, or access.read)')
  .option('--status <status>', 'pending | approved | denied | cancelled | expired')
  .addOption(json())
  .action(async (o: { reviewable?: boolean; all?: boolean; status?: string; json?: boolean }) => {
    const q = new URLSearchParams();
    if (o.reviewable) q.set('reviewable', 'true');
    else if (o.all) q.set('mine', 'false');
    if (o.status) q.set('status', o.status);
    const r = await call<{ requests: RequestView[] }>('GET', `/v1/access-requests${q.size ? `?${q}` : ''}`);
    out(!!o.json, r, () => (r.requests.length === 0 ? '(none)' : r.requests.map((x) => `${requestLine(x)}\n  requested by ${x.requester}: ${x.reason}`).join('\n')));
  });
requests.command('show').argument('<id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
  const r = await call<RequestView>('GET', `/v1/access-requests/${enc(id)}`);
  out(!!o.json, r, () =>
    [
      requestLine(r),
      `  requested by ${r.requester}: ${r.reason}${r.ticket ? ` (${r.ticket})` : ''}`,
      ...r.reviews.map((v) => `  ${v.verdict === 'approve' ? 'approved' : 'denied'} by ${v.reviewer} at ${v.at}${v.comment ? `: ${v.comment}` : ''}`),
      ...r.comments.map((c) => `  ${c.author} at ${c.at}: ${c.text}`),
    ].join('\n'),
  );
});
for (const [verb, field, help] of [
  ['approve', 'comment', 'approve (never your own request)'],
  ['deny', 'comment', 'deny: one denial ends the request'],
  ['cancel', 'reason', 'cancel your own pending request'],
] as const) {
  requests
    .command(verb)
    .description(help)
    .argument('<id>')
    .option(`--${field} <text>`)
    .addOption(json())
    .action(async (id: string, o: Record<string, string | boolean | undefined>) => {
      const value = o[field];
      const r = await call<RequestView>('POST', `/v1/access-requests/${enc(id)}/${verb}`, { body: typeof value === 'string' ? { [field]: value } : {} });
      out(!!o.json, r, () => requestLine(r));
    });
}
requests.command('comment').argument('<id>').argument('<text>').addOption(json()).action(async (id: string, text: string, o: { json?: boolean }) => {
  const r = await call<RequestView>('POST', `/v1/access-requests/${enc(id)}/comment`, { body: { text } });
  out(!!o.json, r, () => `commented on ${r.id}\n  ${r.status_line}`);
});

const grants = program.command('grants').description('grants from approved requests and break-glass');
grants
  .command('list', { isDefault: true })
  .description('yours by default')
  .option('--identity <id>')
  .option('--all')
  .option('--active', 'only those in force now')
  .addOption(json())
  .action(async (o: { identity?: string; all?: boolean; active?: boolean; json?: boolean }) => {
    const q = new URLSearchParams();
    if (o.all) q.set('all', 'true');
    else if (o.identity) q.set('identity', o.identity);
    if (o.active) q.set('active', 'true');
    const r = await call<{ grants: Record<string, unknown>[] }>('GET', `/v1/grants${q.size ? `?${q}` : ''}`);
    out(!!o.json, r, () => table(r.grants, ['id', 'kind', 'identity_id', 'what', 'end_at', 'status_line']));
  });
grants.command('revoke').argument('<id>').requiredOption('--reason <text>').addOption(json()).action(async (id: string, o: { reason: string; json?: boolean }) => {
  const r = await call<{ grant: { id: string; what: string } }>('POST', `/v1/grants/${enc(id)}/revoke`, { body: { reason: o.reason } });
  out(!!o.json, r, () => `ended ${r.grant.id} (${r.grant.what}); credentials issued under it are revoked`);
});

const breakGlass = program
  .command('break-glass')
  .description('emergency access without approval: eligible by policy, reason required, time-capped, revokers notified, reviewed afterwards')
  .option('--target <entity>', 'e.g. Database::"orders"')
  .option('--reason <text>', 'why (mandatory)')
  .option('--for <duration>', 'at most the configured cap (default: the cap)')
  .addOption(json())
  .action(async (o: { target?: string; reason?: string; for?: string; json?: boolean }) => {
    if (!o.target || !o.reason) throw new CliError('break-glass needs --target and --reason', EXIT.usage);
    const r = await call<{ grant: { id: string; what: string; end_at: string; revokers: string[] }; review: { id: string } }>('POST', '/v1/break-glass', {
      body: { target: parseEntity(o.target), reason: o.reason, ...(o.for && { duration: o.for }) },
    });
    out(!!o.json, r, () =>
      `BREAK-GLASS ${r.grant.id}: ${r.grant.what} until ${r.grant.end_at}\n  every action is tagged in the audit log; revokers notified: ${r.grant.revokers.join(', ') || '(none configured)'}\n  end it early: portcullis break-glass end ${r.grant.id} --reason …; an after-action review (${r.review.id}) is now open`,
    );
  });
breakGlass.command('end').argument('<grant-id>').requiredOption('--reason <text>').addOption(json()).action(async (id: string, o: { reason: string; json?: boolean }) => {
  const r = await call<{ grant: { id: string } }>('POST', `/v1/break-glass/${enc(id)}/end`, { body: { reason: o.reason } });
  out(!!o.json, r, () => `ended break-glass ${r.grant.id}`);
});
breakGlass.command('review').argument('<grant-id>').requiredOption('--summary <text>', 'what happened and what was done').addOption(json()).action(async (id: string, o: { summary: string; json?: boolean }) => {
  const r = await call<{ review: { id: string; status: string } }>('POST', `/v1/break-glass/${enc(id)}/review`, { body: { summary: o.summary } });
  out(!!o.json, r, () => `review ${r.review.id} recorded (${r.review.status})`);
});
breakGlass.command('reviews').option('--open', 'only open items').addOption(json()).action(async (o: { open?: boolean; json?: boolean }) => {
  const r = await call<{ reviews: Record<string, unknown>[] }>('GET', `/v1/break-glass/reviews${o.open ? '?status=open' : ''}`);
  out(!!o.json, r, () => table(r.reviews, ['id', 'grant_id', 'user', 'status', 'opened_at', 'reviewer']));
});

program
  .command('webhooks')
  .description('access notifications')
  .command('deliveries')
  .option('--status <status>', 'pending | delivered | failed')
  .addOption(json())
  .action(async (o: { status?: string; json?: boolean }) => {
    const r = await call<{ deliveries: Record<string, unknown>[] }>('GET', `/v1/webhooks/deliveries${o.status ? `?status=${enc(o.status)}` : ''}`);
    out(!!o.json, r, () => table(r.deliveries, ['id', 'endpoint', 'event_type', 'status', 'attempts', 'last_status', 'last_error']));
  });

// ── keys & sessions ─────────────────────────────────────────────────────────────────────────

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

// ── run ─────────────────────────────────────────────────────────────────────────────────────

function stopOnSignal(stop: () => Promise<void>): void {
  const handler = () => {
    process.stderr.write('\nstopping…\n');
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

// At a terminal, a step_up_required answer re-runs the SSO login with MFA and retries the call.
if (interactive() && !process.argv.includes('--json') && !process.env.PORTCULLIS_TOKEN) {
  onStepUp(async (required) => {
    log(`This needs a fresh sign-in${required.mfa ? ' with multi-factor authentication' : ''}.`);
    await ssoLogin({ stepUp: { mfa: required.mfa ?? false, ...(required.max_age !== undefined && { max_age: required.max_age }) }, log });
    return true;
  });
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const wantsJson = process.argv.includes('--json');
  if (err instanceof CliError) {
    if (wantsJson) printJson({ error: err.message, ...(err.problem && { problem: err.problem }) });
    else process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof PortcullisError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.status === 400 ? EXIT.usage : EXIT.failure;
  } else {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = EXIT.failure;
  }
}
