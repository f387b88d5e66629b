// A `kind: postgres` target in portcullis.yaml: the database, its admin connection (password from
// the environment variable `password_env`, never inline), permission sets, limits and timeouts.
import { duration, forbidden, integer, mapping, oneOf, text, texts, z } from '../../../common/validation.ts';
import { TARGET_NAME_RE, targetFields, ttls } from '../plugin.ts';

/**
 * What revocation does with objects the lease's role created: `drop_objects` (default) drops
 * them; `keep_objects` hands them to the target's keeper role (NOLOGIN, nothing beyond the
 * schemas), never to the admin connection's role.
 */
const ON_REVOKE = ['drop_objects', 'keep_objects'] as const;
export type OnRevoke = (typeof ON_REVOKE)[number];

export type PostgresPermission = (
  | { preset: 'readonly' | 'readwrite'; schemas: string[] }
  /** Single GRANT statements with `{{role}}` where the generated role name goes. */
  | { statements: string[] }
) & { on_revoke?: OnRevoke };

/** Limits on every call to a target, so a target that stops answering cannot hang the broker. */
export interface TargetTimeouts {
  /** TCP connect + authentication. */
  connect_ms: number;
  /** Server-side statement_timeout; the client gives up at this + 1 s (query_timeout). */
  statement_ms: number;
  /** Server-side idle_in_transaction_session_timeout. */
  idle_in_transaction_ms: number;
  /** TCP keepalive initial delay. */
  keepalive_ms: number;
}

const DEFAULT_TARGET_TIMEOUTS: TargetTimeouts = { connect_ms: 5000, statement_ms: 10_000, idle_in_transaction_ms: 10_000, keepalive_ms: 10_000 };

export interface PostgresTarget {
  name: string;
  kind: 'postgres';
  host: string;
  port: number;
  database: string;
  admin: { user: string; password_env: string };
  permissions: Record<string, PostgresPermission>;
  max_ttl_ms: number;
  default_ttl_ms: number;
  connection_limit: number;
  timeouts: TargetTimeouts;
}

const PG_IDENT_RE = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

// Only single GRANT statements to the generated role: a permission set must not be able to
// run arbitrary admin SQL or grant to anyone else.
// Exactly: GRANT <privileges ON objects | role> TO {{role}} — the role once, as the only
// grantee, at the end. Not `TO {{role}}, other`, not `GRANT {{role}} TO other` (membership in
// the lease for someone else), not WITH GRANT/ADMIN OPTION (the lease would hand the privilege
// on to others), not GRANTED BY, no comments that could hide any of these.
function isGrantStatement(s: string): boolean {
  return /^\s*GRANT\s[\s\S]*\sTO\s+\{\{role\}\}\s*$/i.test(s) && s.split('{{role}}').length === 2 && !s.includes(';') && !/--|\/\*/.test(s);
}

const grantStatements = z
  .array(text().refine(isGrantStatement, 'expected a single GRANT statement ending in TO {{role}} (the generated role as the only grantee, no WITH GRANT OPTION)'))
  .min(1);

/** `readonly`, `readwrite`, a list of GRANT statements, or `{ preset, schemas?, on_revoke? }` / `{ statements, on_revoke? }`. */
const permission = z.union(
  [
    oneOf(['readonly', 'readwrite']).transform((preset): PostgresPermission => ({ preset, schemas: ['public'] })),
    grantStatements.transform((statements): PostgresPermission => ({ statements })),
    mapping({
      preset: oneOf(['readonly', 'readwrite']).optional(),
      schemas: texts({ nonEmpty: true, pattern: PG_IDENT_RE, hint: 'expected a schema name' }).optional(),
      statements: grantStatements.optional(),
      on_revoke: oneOf(ON_REVOKE).optional(),
    }).transform((o, ctx): PostgresPermission => {
      const revoke = o.on_revoke !== undefined ? { on_revoke: o.on_revoke } : {};
      if (o.preset !== undefined) {
        if (o.statements !== undefined) ctx.addIssue({ code: 'custom', path: ['statements'], message: 'give either preset or statements, not both' });
        return { preset: o.preset, schemas: o.schemas ?? ['public'], ...revoke };
      }
      if (o.schemas !== undefined) ctx.addIssue({ code: 'custom', path: ['schemas'], message: 'goes with preset only' });
      if (o.statements === undefined) ctx.addIssue({ code: 'custom', path: [], message: 'needs preset or statements' });
      return { statements: o.statements ?? [], ...revoke };
    }),
  ],
  { error: 'expected readonly, readwrite, a list of GRANT statements or { preset | statements }' },
);

const timeout = (max: number, range: string) => duration({ min: 100, max, range });

export const postgresConfig = mapping({
  ...targetFields('postgres'),
  host: text(),
  port: integer(1, 65535).default(5432),
  database: text(),
  admin: mapping({
    user: text(),
    password_env: text({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: 'expected an environment variable name' }),
    password: forbidden('plain-text passwords are not accepted; use password_env'),
  }),
  permissions: z
    .record(text({ pattern: TARGET_NAME_RE, hint: 'invalid permission set name' }), permission)
    .refine((p) => Object.keys(p).length > 0, 'required map of permission set name → readonly | readwrite | { statements }'),
  connection_limit: integer(1, 1000).default(5),
  timeouts: mapping({
    connect: timeout(120_000, 'must be between 100ms and 120s').optional(),
    statement: timeout(600_000, 'must be between 100ms and 600s').optional(),
    idle_in_transaction: timeout(600_000, 'must be between 100ms and 600s').optional(),
    keepalive: timeout(600_000, 'must be between 100ms and 600s').optional(),
  }).optional(),
}).transform((o, ctx): PostgresTarget => {
  const d = DEFAULT_TARGET_TIMEOUTS;
  const t = o.timeouts ?? {};
  return {
    name: o.name,
    kind: 'postgres',
    host: o.host,
    port: o.port,
    database: o.database,
    admin: { user: o.admin.user, password_env: o.admin.password_env },
    permissions: o.permissions,
    ...ttls(o, ctx),
    connection_limit: o.connection_limit,
    timeouts: {
      connect_ms: t.connect ?? d.connect_ms,
      statement_ms: t.statement ?? d.statement_ms,
      idle_in_transaction_ms: t.idle_in_transaction ?? d.idle_in_transaction_ms,
      keepalive_ms: t.keepalive ?? d.keepalive_ms,
    },
  };
});
