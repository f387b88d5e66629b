// The PostgreSQL gateway (issue #11): `pgbench -S` through the gateway — every statement parsed,
// decided and recorded — next to pgbench straight to the same server (and PgBouncer in front of
// it when installed), same run, same machine; and the gateway's overhead per statement (p50/p99 of
// one client's prepared selects, through the gateway minus direct), with the audit events and the
// store commits (one fsync each) per statement; the record floor (what the durability rule allows
// at most on this disk, and the disk's bare fdatasync latency) and each mode's bound against
// PgBouncer. PCX_BENCH_GATEWAY_SECONDS shortens pgbench's -T.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import pg from 'pg';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import { Broker } from '../src/broker/index.ts';
import { brokerInternals } from '../src/broker/internals.ts';
import { loadavg } from 'node:os';
import { freePort, startPostgres } from '../test/credentials/helpers.ts';
import { percentile } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;
const run = promisify(execFile);

/** The figures by default (scale 10, 30 s, 8 clients); smaller for a quick look. */
const SCALE = Number(process.env.PCX_BENCH_GATEWAY_SCALE ?? 10);
const SECONDS = Number(process.env.PCX_BENCH_GATEWAY_SECONDS ?? 30);
const CLIENTS = Number(process.env.PCX_BENCH_GATEWAY_CLIENTS ?? 8);
const LATENCY_N = 3000;

const has = (bin: string) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;

/** The postgres user's ids, to run PgBouncer as when this process is root. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  return Number.isInteger(uid) && uid > 0 ? { uid, gid } : undefined;
}

async function pgbench(args: string[], env: Record<string, string>): Promise<{ tps: number; statements: number }> {
  const r = await run('pgbench', ['-n', '-S', '-T', String(SECONDS), '-c', String(CLIENTS), '-j', String(Math.min(CLIENTS, 2)), ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
  const m = /tps = ([0-9.]+) \(without initial connection time\)/.exec(r.stdout) ?? /tps = ([0-9.]+)/.exec(r.stdout);
  if (!m) throw new Error(`pgbench printed no tps: ${r.stdout}${r.stderr}`);
  // -S: one statement per transaction.
  return { tps: Number(m[1]), statements: Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1] ?? NaN) };
}

/** Audit events written and store commits (one fsync each) so far: per statement, the cost of recording. */
async function auditCounts(broker: Broker): Promise<{ events: number; commits: number }> {
  const events = (await broker.metrics.auditEvents.get()).values.reduce((a, v) => a + (v.labels.result === 'ok' ? v.value : 0), 0);
  return { events, commits: brokerInternals(broker).audit.commits ?? NaN };
}

const per = (n: number, d: number): number => +(n / d).toFixed(3);

/** The disk's bare durable-write latency (4 KiB write + fdatasync, µs, p50/p90) in `dir`: what one group commit costs at least. */
function fdatasyncUs(dir: string): { p50: number; p90: number } {
  const file = join(dir, 'fdatasync.probe');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 1);
  const lat: number[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      writeSync(fd, buf, 0, buf.length, (i % 64) * 4096);
      const t = performance.now();
      fdatasyncSync(fd);
      lat.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  lat.sort((a, b) => a - b);
  return { p50: Math.round(percentile(lat, 50) * 1000), p90: Math.round(percentile(lat, 90) * 1000) };
}

/**
 * One client, LATENCY_N statements (prepared, or simple with the literal inline): per-statement
 * latencies (ms, sorted) and this process's CPU per statement (µs: the gateway, broker and audit
 * writer run here; the client library's share is in the direct figure too).
 */
async function latencies(c: pg.Client, mode: 'prepared' | 'simple'): Promise<{ lat: number[]; cpuUs: number; loopCpuUs: number }> {
  const out: number[] = [];
  let cpu0 = process.cpuUsage();
  let loop0 = process.threadCpuUsage();
  for (let i = 0; i < LATENCY_N + 300; i++) {
    if (i === 300) {
      cpu0 = process.cpuUsage();
      loop0 = process.threadCpuUsage();
    }
    const aid = 1 + ((i * 7919) % (SCALE * 100_000));
    const t = performance.now();
    if (mode === 'prepared') await c.query({ name: 'lat', text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', values: [aid] });
    else await c.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid}`);
    if (i >= 300) out.push(performance.now() - t);
  }
  const cpu = process.cpuUsage(cpu0);
  const loop = process.threadCpuUsage(loop0);
  return { lat: out.sort((a, b) => a - b), cpuUs: (cpu.user + cpu.system) / LATENCY_N, loopCpuUs: (loop.user + loop.system) / LATENCY_N };
}

export async function run_(emit: Emit): Promise<void> {
  if (!has('pgbench')) {
    emit({ bench: 'gateway', skipped: 'pgbench is not installed (apt-get install postgresql-client; Debian ships pgbench with postgresql)' });
    return;
  }
  const db = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-gw-'));
  let broker: Broker | undefined;
  const stops: (() => Promise<void>)[] = [];
  try {
    const direct = { PGHOST: '127.0.0.1', PGPORT: String(db.port), PGUSER: db.user, PGPASSWORD: db.password, PGDATABASE: db.database };
    // pgbench's tables, owned by the broker's role (it grants on them to each lease's role).
    await run('pgbench', ['-i', '-q', '-s', String(SCALE)], { env: { ...process.env, ...direct }, maxBuffer: 1 << 24 });
    const gwPort = await freePort();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };
    writeFileSync(join(dir, 'p.cedar'), `permit (principal == Workload::"workload:github/acme/api", action in [Action::"db.connect", Action::"credential.issue", Action::"db.select"], resource in Database::"bench-db");
permit (principal == Workload::"workload:github/acme/api", action == Action::"db.execute", resource == Function::"count");`);
    const yaml = stringify({
      listen: { host: '127.0.0.1', port: 7998 },
      data_dir: './data',
      trusts: [{ name: 'ci', kind: 'oidc', issuer: 'https://ci.bench', jwks: { keys: [jwk] }, audiences: ['portcullis'], algorithms: ['EdDSA'], identity: 'workload:github/{repository}', boundary: 'application', environment: 'prod' }],
      identities: [{ id: 'workload:github/acme/api', kind: 'workload', owner: 'team:payments', boundary: 'application', environment: 'prod' }],
      resources: [{ type: 'Database', id: 'bench-db', boundary: 'application', environment: 'prod' }],
      targets: [{ name: 'bench-db', kind: 'postgres', host: '127.0.0.1', port: db.port, database: db.database, admin: { user: db.user, password_env: 'BENCH_PG_PASSWORD' }, permissions: { readonly: 'readonly' }, max_ttl: '1h', connection_limit: CLIENTS + 4 }],
      gateways: [{ name: 'bench-gw', kind: 'postgres', listen: { host: '127.0.0.1', port: gwPort }, target: 'bench-db', permission: 'readonly' }],
      policies: './p.cedar',
    });
    const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 5).toString('base64'), BENCH_PG_PASSWORD: db.password };
    broker = await Broker.open(parseConfig(yaml, dir, env).config, { env });
    await broker.startGateways();
    const proof = await new SignJWT({ repository: 'acme/api' }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('30m').sign(privateKey);
    const token = (await broker.login({ type: 'jwt', token: proof }, '127.0.0.1')).session_token;
    const viaGateway = { PGHOST: '127.0.0.1', PGPORT: String(gwPort), PGUSER: 'bench', PGPASSWORD: token, PGDATABASE: 'bench-db' };

    // PgBouncer in front of the same server (the comparison): installed with apt when it can be.
    if (!has('pgbouncer') && has('apt-get') && process.getuid?.() === 0) {
      await run('apt-get', ['install', '-y', '-qq', 'pgbouncer'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 }).catch((err: Error) => emit({ bench: 'gateway', note: `apt-get install pgbouncer failed: ${err.message.split('\n')[0]}` }));
    }
    let bouncer: ((mode: 'session' | 'transaction') => Promise<{ env: Record<string, string>; stop: () => Promise<void> }>) | undefined;
    if (has('pgbouncer')) {
      // PgBouncer refuses to run as root: as root it runs as the postgres user (which must read its files).
      const asUser = process.getuid?.() === 0 ? postgresUser() : undefined;
      chmodSync(dir, 0o755);
      bouncer = async (mode) => {
        const port = await freePort();
        const ini = join(dir, `pgbouncer-${mode}.ini`);
        writeFileSync(join(dir, 'users.txt'), `"${db.user}" "${db.password}"\n`, { mode: 0o644 });
        writeFileSync(ini, `[databases]\n${db.database} = host=127.0.0.1 port=${db.port} dbname=${db.database}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nauth_type = scram-sha-256\nauth_file = ${join(dir, 'users.txt')}\npool_mode = ${mode}\ndefault_pool_size = ${CLIENTS}\nmax_client_conn = 100\nunix_socket_dir =\nlogfile = /dev/null\n`, { mode: 0o644 });
        const p = spawn('pgbouncer', [ini], { stdio: 'ignore', ...(asUser && { uid: asUser.uid, gid: asUser.gid }) });
        // Ready when it accepts connections.
        for (let i = 0; i < 100; i++) {
          const ok = await new Promise<boolean>((r) => {
            const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
            s.on('error', () => r(false));
          });
          if (ok) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        return { env: { ...direct, PGPORT: String(port) }, stop: async () => void p.kill('SIGINT') };
      };
    } else {
      emit({ bench: 'gateway', note: 'pgbouncer is not installed: the PgBouncer comparison is skipped (apt-get install pgbouncer)' });
    }

    const rates: Record<string, { gateway: number; pgbouncer?: number }> = {};
    for (const mode of ['simple', 'prepared'] as const) {
      const args = ['-M', mode];
      const directTps = (await pgbench(args, direct)).tps;
      const a0 = await auditCounts(broker);
      const load = loadavg()[0]!;
      const gw = await pgbench(args, viaGateway);
      const a1 = await auditCounts(broker);
      const gatewayTps = gw.tps;
      let bouncerTps: number | undefined;
      if (bouncer) {
        // Debian's pgbouncer 1.18 keeps prepared statements in session pooling only.
        const b = await bouncer(mode === 'simple' ? 'transaction' : 'session');
        stops.push(b.stop);
        try {
          bouncerTps = (await pgbench(args, b.env)).tps;
        } finally {
          await b.stop();
        }
      }
      rates[mode] = { gateway: gatewayTps, ...(bouncerTps !== undefined && { pgbouncer: bouncerTps }) };
      emit({
        bench: 'gateway', op: 'pgbench -S', protocol: mode, scale: SCALE, seconds: SECONDS, clients: CLIENTS,
        direct_tps: Math.round(directTps), gateway_tps: Math.round(gatewayTps), gateway_to_direct: +(gatewayTps / directTps).toFixed(2),
        ...(bouncerTps !== undefined && { pgbouncer_tps: Math.round(bouncerTps), pgbouncer_to_direct: +(bouncerTps / directTps).toFixed(2), gateway_to_pgbouncer: +(gatewayTps / bouncerTps).toFixed(2) }),
        // Through the gateway: audit events (decisions + statement record) and store commits per statement.
        audit_events_per_statement: per(a1.events - a0.events, gw.statements), commits_per_statement: per(a1.commits - a0.commits, gw.statements),
        load_average: +load.toFixed(2),
      });
    }

    // The floor the durability rule sets: CLIENTS loops, each appending a statement's two records
    // (decision + statement) in one turn and waiting until they are durable — nothing else. No
    // gateway can exceed this rate on this store and disk, whatever it does.
    {
      const audit = brokerInternals(broker).audit;
      const a0 = await auditCounts(broker);
      const until = performance.now() + Math.min(SECONDS, 10) * 1000;
      let statements = 0;
      await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
        while (performance.now() < until) {
          const payload = { session: `bench-${c}`, statement: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', n: statements };
          await Promise.all([audit.append({ stream: 'authz', type: 'bench.decision', actor: 'bench', payload }), audit.append({ stream: 'session', type: 'bench.statement', actor: 'bench', payload })]);
          statements++;
        }
      }));
      const a1 = await auditCounts(broker);
      const floor = statements / Math.min(SECONDS, 10);
      const sync = fdatasyncUs(join(dir, 'data'));
      emit({ bench: 'gateway', op: 'record floor', clients: CLIENTS, statements_per_s: Math.round(floor), commits_per_statement: per(a1.commits - a0.commits, statements), fdatasync_p50_us: sync.p50, fdatasync_p90_us: sync.p90, load_average: +loadavg()[0]!.toFixed(2) });
      // What bounds the gateway: no statement's result leaves before a commit, so CLIENTS clients
      // cannot exceed the floor; `floor_to_pgbouncer` is the highest gateway/PgBouncer ratio this
      // machine allows right now, `gateway_to_floor` how much of it the gateway reached.
      for (const [mode, r] of Object.entries(rates)) {
        emit({
          bench: 'gateway', op: 'bound', protocol: mode, record_floor: Math.round(floor), gateway_tps: Math.round(r.gateway), gateway_to_floor: +(r.gateway / floor).toFixed(2),
          ...(r.pgbouncer !== undefined && { pgbouncer_tps: Math.round(r.pgbouncer), floor_to_pgbouncer: +(floor / r.pgbouncer).toFixed(2), gateway_to_pgbouncer: +(r.gateway / r.pgbouncer).toFixed(2) }),
        });
      }
    }

    // Per-statement overhead: one client, prepared, through the gateway and direct.
    const gw = new pg.Client({ host: '127.0.0.1', port: gwPort, user: 'bench', password: token, database: 'bench-db' });
    const dr = new pg.Client({ host: '127.0.0.1', port: db.port, user: db.user, password: db.password, database: db.database });
    await Promise.all([gw.connect(), dr.connect()]);
    try {
      for (const mode of ['prepared', 'simple'] as const) {
        const a0 = await auditCounts(broker);
        const g = await latencies(gw, mode);
        const a1 = await auditCounts(broker);
        const d = await latencies(dr, mode);
        emit({
          bench: 'gateway', op: 'statement overhead', protocol: mode, statements: LATENCY_N,
          direct_p50_us: Math.round(percentile(d.lat, 50) * 1000), gateway_p50_us: Math.round(percentile(g.lat, 50) * 1000),
          overhead_p50_us: Math.round((percentile(g.lat, 50) - percentile(d.lat, 50)) * 1000), overhead_p99_us: Math.round((percentile(g.lat, 99) - percentile(d.lat, 99)) * 1000),
          // CPU per statement: on the event loop (parsing, deciding, relaying, preparing records) and in
          // the whole process (with the audit writer's commit and fsync); the rest of the latency is
          // waiting for the records' group commit.
          overhead_loop_cpu_us: Math.round(g.loopCpuUs - d.loopCpuUs),
          overhead_cpu_us: Math.round(g.cpuUs - d.cpuUs),
          // One client: every statement waits for a commit of its own (nothing to group with).
          commits_per_statement: per(a1.commits - a0.commits, LATENCY_N + 300),
          load_average: +loadavg()[0]!.toFixed(2),
        });
      }
    } finally {
      await Promise.all([gw.end(), dr.end()]);
    }
  } finally {
    for (const s of stops) await s().catch(() => {});
    await broker?.close();
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export { run_ as run };
