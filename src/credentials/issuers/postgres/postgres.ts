// PostgreSQL dynamic roles. Each lease gets its own LOGIN role with a random name (prefix `pcx_`),
// a random password, VALID UNTIL the lease end, a connection limit, and only the declared grants,
// created in one transaction together with a COMMENT naming the lease so the reconciler can tell
// Portcullis-owned roles from everything else. Revocation blocks new logins, terminates the role's
// live backends (waiting for them to exit), then drops what it owns (in every database) and the
// role; objects are never handed to the admin role (see #dropRole).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import { InvalidInput } from '../../../common/errors.ts';
import type { OnRevoke, PostgresTarget } from './config.ts';
import { TargetError } from '../../errors.ts';
import { fingerprint } from '../../fingerprint.ts';
import type { CredentialIssuer, IssueRequest, IssueResult, Lease, LeaseView, ReconcileResult, RenewResult } from '../../types.ts';

const ROLE_PREFIX = 'pcx_';
const ROLE_RE = /^pcx_[a-z0-9]{20}$/;
const COMMENT_RE = /^portcullis-managed lease=(lse_[a-z0-9]+) target=(\S+)$/;

export interface PostgresIssuerOptions {
  target: PostgresTarget;
  /** Where `admin.password_env` is looked up (default process.env). */
  env?: Record<string, string | undefined>;
}

const q = pg.escapeIdentifier;
// GRANT / DROP OWNED on the same objects from concurrent sessions fail with "tuple concurrently
// updated"; one transaction-scoped advisory lock serialises Portcullis' privilege changes per
// database, across brokers too.
const ACL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('portcullis:credentials:acl'))";
const lit = pg.escapeLiteral;
// The admin connection resolves names in pg_catalog only (temp schema last, for relations only).
// PostgreSQL picks an unqualified function or operator from EVERY schema on the search_path by best
// argument match (CVE-2018-1058): with `public` on it, a lease that may create there plants
// `public.pg_advisory_xact_lock(integer)` or an operator `public.=(oid, regclass)` and the broker
// runs it as the admin role. Set as a startup option, so ALTER ROLE / ALTER DATABASE … SET
// search_path cannot change it either.
const ADMIN_SEARCH_PATH = 'pg_catalog, pg_temp';
// Operator-written GRANT statements are resolved as written against the usual path; GRANT evaluates
// no function or operator, so nothing planted can run while it is in force.
const STATEMENTS_SEARCH_PATH = `SET LOCAL search_path = "$user", public`;
const ADMIN_PATH = `SET LOCAL search_path = ${ADMIN_SEARCH_PATH}`;

function randomRoleName(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(20);
  let s = ROLE_PREFIX;
  for (const b of bytes) s += alphabet[b % 36];
  return s;
}

/**
 * A SCRAM-SHA-256 verifier computed here, so the plain password never travels to the server
 * (and cannot land in its statement log).
 */
function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export function grantStatements(target: PostgresTarget, permission: string, role: string): string[] {
  const perm = target.permissions[permission];
  if (!perm) throw new InvalidInput(`permission: "${permission}" is not declared for target ${target.name}`, 'permission');
  const r = q(role);
  const out = [`GRANT CONNECT ON DATABASE ${q(target.database)} TO ${r}`];
  if ('statements' in perm) {
    out.push(STATEMENTS_SEARCH_PATH);
    for (const s of perm.statements) out.push(s.replaceAll('{{role}}', r));
    out.push(ADMIN_PATH);
    return out;
  }
  for (const schema of perm.schemas) {
    const s = q(schema);
    out.push(`GRANT USAGE ON SCHEMA ${s} TO ${r}`);
    if (perm.preset === 'readonly') {
      out.push(`GRANT SELECT ON ALL TABLES IN SCHEMA ${s} TO ${r}`);
    } else {
      out.push(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${r}`);
      out.push(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`);
    }
  }
  return out;
}

/**
 * What a superuser runs once so that `role` can be a target's admin connection with the least
 * rights (docs/credentials.md): LOGIN CREATEROLE, not superuser; CONNECT on the database and USAGE
 * on the schema with GRANT OPTION; GRANT OPTION on the schema's tables and sequences, including
 * ones created later by `tablesOwner` (default privileges).
 */
export function adminRoleSetup(database: string, role: string, password: string): string[] {
  const r = q(role);
  return [
    `CREATE ROLE ${r} WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD ${lit(scramVerifier(password))}`,
    `GRANT CONNECT ON DATABASE ${q(database)} TO ${r} WITH GRANT OPTION`,
    `GRANT USAGE ON SCHEMA public TO ${r} WITH GRANT OPTION`,
    `GRANT ALL ON ALL TABLES IN SCHEMA public TO ${r} WITH GRANT OPTION`,
    `GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${r} WITH GRANT OPTION`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO ${r} WITH GRANT OPTION`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO ${r} WITH GRANT OPTION`,
  ];
}

export class PostgresIssuer implements CredentialIssuer {
  readonly kind = 'postgres' as const;
  readonly target: string;
  readonly resourceType = 'Database';
  /** Issuing creates a role: the lease is on record as an intent first, so reconcile can drop what a crash left. */
  readonly createsAtTarget = true;
  readonly #cfg: PostgresTarget;
  readonly #pool: pg.Pool;
  readonly #password: string;

  constructor(opts: PostgresIssuerOptions) {
    this.#cfg = opts.target;
    this.target = opts.target.name;
    const env = opts.env ?? process.env;
    const password = env[opts.target.admin.password_env];
    if (password === undefined || password === '') {
      throw new InvalidInput(
        `target ${opts.target.name}: environment variable ${opts.target.admin.password_env} (admin.password_env) is not set`,
        'admin.password_env',
      );
    }
    this.#password = password;
    this.#pool = new pg.Pool({ ...this.#connOptions(opts.target.database), max: 3, idleTimeoutMillis: 10_000 });
    // An idle admin connection dropping must not crash the broker; the next query reconnects.
    this.#pool.on('error', () => {});
  }

  /**
   * Connection options with every limit set: a target that stops answering (frozen, partitioned,
   * overloaded) fails the call after connect / query timeout instead of hanging it for minutes.
   * statement_timeout and idle_in_transaction_session_timeout are enforced by the server;
   * query_timeout (statement + 1 s) and the connect timeout by the client, which is what counts
   * when the server does not answer at all; TCP keepalive notices a dead peer on idle connections.
   */
  #connOptions(database: string): pg.ClientConfig {
    const t = this.#cfg.timeouts;
    return {
      host: this.#cfg.host,
      port: this.#cfg.port,
      database,
      user: this.#cfg.admin.user,
      password: this.#password,
      application_name: 'portcullis',
      options: `-c search_path=${ADMIN_SEARCH_PATH.replace(' ', '')}`,
      connectionTimeoutMillis: t.connect_ms,
      statement_timeout: t.statement_ms,
      lock_timeout: t.statement_ms,
      query_timeout: t.statement_ms + 1000,
      idle_in_transaction_session_timeout: t.idle_in_transaction_ms,
      keepAlive: true,
      keepAliveInitialDelayMillis: t.keepalive_ms,
    };
  }

  check(params: Record<string, unknown>, permission: string | undefined): string {
    const p = permission ?? (typeof params.permission === 'string' ? params.permission : undefined);
    if (p === undefined) throw new InvalidInput(`permission: required (one of ${Object.keys(this.#cfg.permissions).join(', ')})`, 'permission');
    if (!Object.hasOwn(this.#cfg.permissions, p)) {
      throw new InvalidInput(`permission: "${p}" is not declared for target ${this.target} (one of ${Object.keys(this.#cfg.permissions).join(', ')})`, 'permission');
    }
    return p;
  }

  async #withAdmin<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw new TargetError(this.target, `cannot connect as admin: ${(e as Error).message}`);
    }
    // A connection that failed (timeout, reset, protocol error) is discarded, never reused: after
    // a client-side query timeout the server may still be running or answering the old query.
    let failed: Error | undefined;
    // The target lost mid-call is also emitted on the client: unheard, it would crash the broker.
    const lost = (e: Error) => (failed ??= e);
    client.on('error', lost);
    try {
      return await fn(client);
    } catch (e) {
      failed = e as Error;
      if (e instanceof TargetError || e instanceof InvalidInput) throw e;
      throw new TargetError(this.target, `${what} failed: ${(e as Error).message}`);
    } finally {
      client.off('error', lost);
      client.release(failed);
    }
  }

  /** A one-off admin connection to another database of the same server (DROP OWNED is per database). */
  async #inDatabase<T>(database: string, what: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client(this.#connOptions(database));
    c.on('error', () => {});
    try {
      await c.connect();
      return await fn(c);
    } catch (e) {
      throw new TargetError(this.target, `${what} in database ${database} failed: ${(e as Error).message}`);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    const { lease } = req;
    const role = randomRoleName();
    const password = randomBytes(24).toString('base64url');
    const statements = grantStatements(this.#cfg, lease.permission, role);
    await this.#withAdmin('create role', async (c) => {
      // On failure no ROLLBACK round trip: #withAdmin discards a failed connection, which ends the
      // transaction server-side; against a frozen server a ROLLBACK would wait out another timeout.
      await c.query('BEGIN');
      await c.query(ACL_LOCK);
      await c.query(
        `CREATE ROLE ${q(role)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ` +
          `PASSWORD ${lit(scramVerifier(password))} VALID UNTIL ${lit(new Date(lease.expiresAt).toISOString())} ` +
          `CONNECTION LIMIT ${this.#cfg.connection_limit}`,
      );
      await c.query(`COMMENT ON ROLE ${q(role)} IS ${lit(`portcullis-managed lease=${lease.id} target=${this.target}`)}`);
      for (const s of statements) await c.query(s);
      await c.query('COMMIT');
    });
    const { host, port, database } = this.#cfg;
    return {
      handle: role,
      fingerprint: fingerprint(password),
      params: { role },
      credential: {
        host,
        port,
        database,
        user: role,
        password,
        uri: `postgresql://${role}:${encodeURIComponent(password)}@${host.includes(':') ? `[${host}]` : host}:${port}/${encodeURIComponent(database)}`,
      },
    };
  }

  async renew(lease: Lease, expiresAt: number): Promise<RenewResult> {
    const role = this.#roleOf(lease);
    await this.#withAdmin('renew', async (c) => {
      const r = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (r.rowCount === 0) throw new TargetError(this.target, `role for lease ${lease.id} no longer exists`);
      await c.query(`ALTER ROLE ${q(role)} VALID UNTIL ${lit(new Date(expiresAt).toISOString())}`);
    });
    return {};
  }

  #roleOf(lease: Lease): string {
    const role = lease.handle;
    // Never touch a role that does not look like one of ours, whatever the lease row says.
    if (role === null || !ROLE_RE.test(role)) throw new TargetError(this.target, `lease ${lease.id} has no Portcullis role`);
    return role;
  }

  async revoke(lease: Lease): Promise<void> {
    if (lease.handle === null) return; // issuance never got as far as naming a role
    const role = this.#roleOf(lease);
    const perm = Object.hasOwn(this.#cfg.permissions, lease.permission) ? this.#cfg.permissions[lease.permission] : undefined;
    await this.#withAdmin('revoke', (c) => this.#dropRole(c, role, perm?.on_revoke ?? 'drop_objects'));
  }

  /** The per-target role kept objects are handed to: no login, no membership, nothing beyond the schemas. */
  keeperRole(): string {
    const name = `portcullis_kept_${this.target}`;
    return name.length <= 63 ? name : `portcullis_kept_${this.target.slice(0, 38)}_${createHash('sha256').update(this.target).digest('hex').slice(0, 8)}`;
  }

  /**
   * Ends a lease's role so that nothing it did keeps running with anyone else's rights. Objects
   * it created are dropped (`DROP OWNED`, in every database where it owns something or holds a
   * privilege: DROP OWNED only sees the current database) — or, with `keep_objects`, handed to
   * the target's keeper role. Never to the admin role: a SECURITY DEFINER function, a view, a
   * trigger function or default privileges planted by the lease would then run as the admin.
   */
  async #dropRole(c: pg.PoolClient, role: string, onRevoke: OnRevoke = 'drop_objects'): Promise<void> {
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) return;
    // Close the door first so nothing new gets in while the live sessions are being ended.
    await c.query(`ALTER ROLE ${q(role)} NOLOGIN`);
    // A non-superuser admin (CREATEROLE) holds only ADMIN OPTION on roles it created (PG16+);
    // terminating their backends and DROP OWNED need the role's privileges, i.e. INHERIT.
    await this.#inherit(c, role);
    // Terminate, and wait until the backends are really gone, so "revoked" means the sessions have
    // ended. Terminated again on every poll: a backend that was still authenticating when NOLOGIN
    // committed shows up after the first sweep. Polled at 5 ms: pg_terminate_backend's own timeout
    // form sleeps in 100 ms steps.
    const deadline = Date.now() + 3000;
    for (;;) {
      const r = await c.query<{ n: number }>(
        'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
        [role],
      );
      if (r.rows[0]!.n === 0) break;
      if (Date.now() > deadline) throw new TargetError(this.target, `sessions of ${role} did not end within 3 s`);
      await new Promise((res) => setTimeout(res, 5));
    }
    // A prepared transaction (max_prepared_transactions > 0) outlives its session: it holds its
    // locks, so DROP OWNED would wait it out and the revoke fail for ever, and whoever commits it
    // later resurrects what it created. Rolled back here; only its owner (or a superuser) may, so
    // as the lease role (SET ROLE runs no code; the path stays pg_catalog).
    const prepared = await c.query<{ gid: string; database: string }>('SELECT gid, database FROM pg_prepared_xacts WHERE owner = $1', [role]);
    for (const { gid, database } of prepared.rows) {
      const rollback = async (x: pg.ClientBase) => {
        await x.query(`SET ROLE ${q(role)}`);
        await x.query(`ROLLBACK PREPARED ${lit(gid)}`);
        await x.query('RESET ROLE');
      };
      if (database === this.#cfg.database) await rollback(c);
      else await this.#inDatabase(database, 'rollback prepared', rollback);
    }
    const keeper = onRevoke === 'keep_objects' ? await this.#ensureKeeper(c) : undefined;
    // Other databases first (the role may connect wherever PUBLIC may and create where it may).
    const others = await c.query<{ datname: string }>(
      `SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
        WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)
          AND d.datname <> current_database() AND d.datallowconn ORDER BY 1`,
      [role],
    );
    // When another role's object depends on one the lease made (a view calling its function, a
    // table using its type), DROP OWNED refuses (2BP01) and the revoke would fail for ever, the
    // lease's privileges still usable through what it planted. Then everything it owns goes to
    // the keeper (no login, nothing worth taking) and DROP OWNED removes its privileges: the
    // revocation completes and nothing runs with the lease's rights.
    const dependedOn = (e: unknown) => keeper === undefined && (e as { code?: string }).code === '2BP01';
    for (const { datname } of others.rows) {
      await this.#inDatabase(datname, 'drop owned', async (o) => {
        const inTx = async (k: string | undefined) => {
          await o.query('BEGIN');
          await o.query(ACL_LOCK);
          await this.#dropOwned(o, role, k);
          await o.query('COMMIT');
        };
        try {
          await inTx(keeper);
        } catch (e) {
          if (!dependedOn(e)) throw e;
          await o.query('ROLLBACK');
          await inTx(await this.#ensureKeeper(c));
        }
      });
    }
    // On failure no ROLLBACK round trip: the caller (#withAdmin) discards the connection, which
    // ends the transaction server-side (see issue()).
    const finish = async (k: string | undefined) => {
      await c.query('BEGIN');
      await c.query(ACL_LOCK);
      await this.#dropOwned(c, role, k);
      await c.query(`DROP ROLE ${q(role)}`);
      await c.query('COMMIT');
    };
    try {
      await finish(keeper);
    } catch (e) {
      if (!dependedOn(e)) throw e;
      await c.query('ROLLBACK');
      await finish(await this.#ensureKeeper(c));
    }
  }

  async #inherit(c: pg.ClientBase, role: string): Promise<void> {
    const r = await c.query<{ ok: boolean }>(`SELECT pg_has_role(current_user, $1, 'USAGE') AND pg_has_role(current_user, $1, 'SET') AS ok`, [role]);
    if (!r.rows[0]!.ok) await c.query(`GRANT ${q(role)} TO CURRENT_USER WITH INHERIT TRUE, SET TRUE`);
  }

  async #dropOwned(c: pg.ClientBase, role: string, keeper: string | undefined): Promise<void> {
    if (keeper !== undefined) {
      // The keeper must be allowed to own objects in the schemas the lease could create in.
      const schemas = await c.query<{ nspname: string }>(
        `SELECT nspname FROM pg_namespace WHERE has_schema_privilege($1, oid, 'CREATE')
            AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`,
        [role],
      );
      for (const { nspname } of schemas.rows) await c.query(`GRANT USAGE, CREATE ON SCHEMA ${q(nspname)} TO ${q(keeper)}`);
      await c.query(`REASSIGN OWNED BY ${q(role)} TO ${q(keeper)}`);
      // CREATE was needed for the hand-over only. Kept, it would let anyone who can run a kept
      // SECURITY DEFINER function create objects as the keeper for ever (e.g. shadows of functions
      // other sessions call through their search_path). Runs under ACL_LOCK (callers' transaction).
      for (const { nspname } of schemas.rows) await c.query(`REVOKE CREATE ON SCHEMA ${q(nspname)} FROM ${q(keeper)}`);
    }
    // Drops what is still owned, the role's privileges and its default privileges.
    await c.query(`DROP OWNED BY ${q(role)}`);
  }

  async #ensureKeeper(c: pg.PoolClient): Promise<string> {
    const keeper = this.keeperRole();
    const r = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [keeper]);
    if (r.rowCount === 0) {
      await c.query(`CREATE ROLE ${q(keeper)} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT`).catch(async (e) => {
        // A concurrent revoke created it first.
        const again = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [keeper]);
        if (again.rowCount === 0) throw e;
      });
      await c.query(`COMMENT ON ROLE ${q(keeper)} IS ${lit(`portcullis keeper of objects kept from revoked leases, target=${this.target}`)}`);
    }
    // REASSIGN OWNED to it needs SET (and the privileges of) the keeper.
    const m = await c.query<{ ok: boolean }>(`SELECT pg_has_role(current_user, $1, 'USAGE') AND pg_has_role(current_user, $1, 'SET') AS ok`, [keeper]);
    if (!m.rows[0]!.ok) await c.query(`GRANT ${q(keeper)} TO CURRENT_USER WITH INHERIT TRUE, SET TRUE`);
    return keeper;
  }

  /** Portcullis-owned roles of this target: name prefix AND our comment naming this target. */
  async ownedRoles(): Promise<{ role: string; leaseId: string }[]> {
    return this.#withAdmin('list roles', async (c) => {
      const r = await c.query<{ rolname: string; comment: string | null }>(
        `SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname LIKE 'pcx\\_%'`,
      );
      const out: { role: string; leaseId: string }[] = [];
      for (const row of r.rows) {
        const m = COMMENT_RE.exec(row.comment ?? '');
        if (m && m[2] === this.target && ROLE_RE.test(row.rolname)) out.push({ role: row.rolname, leaseId: m[1]! });
      }
      return out;
    });
  }

  async reconcile(view: LeaseView): Promise<ReconcileResult> {
    const result: ReconcileResult = { dropped: [], missing: [], errors: [] };
    const owned = await this.ownedRoles();
    for (const { role, leaseId } of owned) {
      if (await view.keep(leaseId)) continue;
      try {
        await this.#withAdmin('drop orphan role', (c) => this.#dropRole(c, role));
        result.dropped.push({ handle: role, leaseId });
      } catch (e) {
        result.errors.push(`drop ${role}: ${(e as Error).message}`);
      }
    }
    const present = new Set(owned.map((o) => o.role));
    for (const l of await view.active()) {
      if (l.handle !== null && !present.has(l.handle)) result.missing.push(l.id);
    }
    return result;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
