// What a SQL text asks to do, read from PostgreSQL's own parser (libpg-query, WASM) — never
// from regular expressions: each statement's kind, the decisions it needs (action × Table,
// Function or the Database), its normalized text (literals become $n, so secrets never reach a
// record) and fingerprint. Parse results are cached by text; decisions never are.
import { createRequire } from 'node:module';

type Lpq = typeof import('libpg-query');
let lpq: Lpq | undefined;

/** Loads the parser (WASM) once; the gateway awaits it before it listens. */
export async function loadParser(): Promise<void> {
  if (lpq) return;
  const m = createRequire(import.meta.url)('libpg-query') as Lpq;
  await m.loadModule();
  lpq = m;
}

function parser(): Lpq {
  if (!lpq) throw new Error('the SQL parser is not loaded (loadParser)');
  return lpq;
}

/** The statement kinds the gateway tells apart (`context.statement.kind`). */
export type StatementKind = 'select' | 'insert' | 'update' | 'delete' | 'ddl' | 'admin' | 'execute' | 'transaction' | 'session';

/** One decision a statement needs: an action on a resource (a Database id '' stands for the gateway's target). */
export interface Check {
  action: string;
  resource: { type: 'Table' | 'Function' | 'Database'; id: string };
}

export interface StatementPlan {
  kind: StatementKind;
  /** Every decision the statement needs; all must allow. */
  checks: Check[];
  /** Schema-qualified tables it touches, and functions it calls (as written, schema-qualified when written so). */
  tables: string[];
  functions: string[];
  /** The statement with literals replaced by $n. */
  normalized: string;
  fingerprint: string;
  /** Byte range of the statement in the UTF-8 text it came from. */
  start: number;
  end: number;
  /** `PREPARE name AS …`: the name and the plan of what it prepares. */
  prepares?: { name: string; plan: StatementPlan };
  /** `EXECUTE name`: the SQL-level prepared statement it runs. */
  executes?: string;
  /** `DEALLOCATE name` (or ALL: '*'). */
  deallocates?: string;
  /**
   * Whether running it can leave an effect beyond its own result (writes, DDL, administration,
   * COMMIT, any function call, EXECUTE of a prepared statement): its decisions are made durable
   * before it is sent upstream. False only for reads without function calls and session or
   * transaction control that commits nothing (BEGIN, ROLLBACK, SHOW, harmless SET …).
   */
  effects: boolean;
}

/** A text the parser refused: denied, with the parser's message (no text of the statement). */
export interface Unparsable {
  error: string;
}

export type Analysis = { statements: StatementPlan[] } | Unparsable;

// ── Classification ──────────────────────────────────────────────────────────────────────────

const WRITES: Record<string, string> = { InsertStmt: 'db.insert', UpdateStmt: 'db.update', DeleteStmt: 'db.delete', MergeStmt: 'db.update' };

/** Settings a session may change freely (decided as session control, `db.connect`); any other SET is db.admin. */
const SAFE_SETTINGS = new Set([
  'application_name', 'client_encoding', 'datestyle', 'intervalstyle', 'timezone', 'extra_float_digits', 'statement_timeout',
  'lock_timeout', 'idle_in_transaction_session_timeout', 'work_mem', 'bytea_output', 'client_min_messages', 'transaction',
  'session characteristics', 'transaction_isolation', 'transaction_read_only', 'default_transaction_isolation',
  'default_transaction_read_only', 'synchronous_commit', 'jit', 'enable_seqscan', 'enable_indexscan', 'enable_bitmapscan',
  'random_page_cost', 'max_parallel_workers_per_gather', 'standard_conforming_strings', 'timezone_abbreviations',
]);

/** DDL statements (db.ddl on the relations they name, else on the Database). */
const DDL = /^(Create|Alter|Drop|Rename|Comment|Define|Truncate|Index|View|Rule|CompositeType|RefreshMatView|AlterObjectSchema|AlterOwner)/;
/** Statements that are db.admin whatever their name says (roles, privileges, server, code, files). */
const ADMIN = new Set([
  'DoStmt', 'ListenStmt', 'NotifyStmt', 'UnlistenStmt', 'LoadStmt', 'GrantStmt', 'GrantRoleStmt', 'CreateRoleStmt', 'AlterRoleStmt',
  'AlterRoleSetStmt', 'DropRoleStmt', 'AlterSystemStmt', 'CreatedbStmt', 'DropdbStmt', 'AlterDatabaseStmt', 'AlterDatabaseSetStmt',
  'AlterDatabaseRefreshCollStmt', 'VacuumStmt', 'ClusterStmt', 'ReindexStmt', 'LockStmt', 'CreateExtensionStmt', 'AlterExtensionStmt',
  'AlterExtensionContentsStmt', 'CreateEventTrigStmt', 'AlterEventTrigStmt', 'CreateFdwStmt', 'AlterFdwStmt', 'CreateForeignServerStmt',
  'AlterForeignServerStmt', 'CreateUserMappingStmt', 'AlterUserMappingStmt', 'DropUserMappingStmt', 'ImportForeignSchemaStmt',
  'CreateSubscriptionStmt', 'AlterSubscriptionStmt', 'DropSubscriptionStmt', 'CreatePublicationStmt', 'AlterPublicationStmt',
  'SecLabelStmt', 'ReassignOwnedStmt', 'DropOwnedStmt', 'AlterDefaultPrivilegesStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt',
  'AlterTableSpaceOptionsStmt', 'CreatePLangStmt', 'CreateCastStmt', 'CreateConversionStmt', 'CheckPointStmt', 'CreateTransformStmt',
  'AlterOperatorStmt', 'CreateOpClassStmt', 'CreateOpFamilyStmt', 'AlterOpFamilyStmt', 'CreateAmStmt', 'AlterCollationStmt',
  'CreateStatsStmt', 'AlterStatsStmt', 'AlterTSConfigurationStmt', 'AlterTSDictionaryStmt', 'CreateTrigStmt', 'CreatePolicyStmt',
  'AlterPolicyStmt', 'ConstraintsSetStmt', 'CreateFunctionStmt', 'AlterFunctionStmt',
]);
const TABLE_DROPS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE']);

type Node = Record<string, unknown>;
const isObj = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRangeVar = (v: unknown): v is Node => isObj(v) && typeof v.relname === 'string';
const svals = (list: unknown): string[] => (Array.isArray(list) ? list.map((x) => (isObj(x) && isObj(x.String) ? String(x.String.sval) : '')) : []);

/** Collects what one statement touches. */
class Collector {
  readonly checks = new Map<string, Check>();
  readonly tables = new Set<string>();
  readonly functions = new Set<string>();
  readonly #ctes: Set<string>;
  readonly #searchPath: readonly string[];

  constructor(searchPath: readonly string[], ctes: Set<string>) {
    this.#searchPath = searchPath;
    this.#ctes = ctes;
  }

  add(action: string, type: Check['resource']['type'], id: string): void {
    this.checks.set(`${action} ${type} ${id}`, { action, resource: { type, id } });
  }

  /**
   * A table's schema-qualified names: as written when qualified; unqualified, every schema of
   * the pinned search_path could hold it (each is decided), and pg_catalog for `pg_` names.
   */
  names(rv: Node): string[] {
    const rel = String(rv.relname);
    if (typeof rv.schemaname === 'string' && rv.schemaname !== '') return [`${rv.schemaname}.${rel}`];
    if (rv.relpersistence === 't') return [`pg_temp.${rel}`];
    if (rel.startsWith('pg_')) return [`pg_catalog.${rel}`];
    return this.#searchPath.map((s) => `${s}.${rel}`);
  }

  table(rv: Node, action: string): void {
    // A reference to a WITH query by its name is no table.
    if ((rv.schemaname === undefined || rv.schemaname === '') && this.#ctes.has(String(rv.relname))) return;
    for (const name of this.names(rv)) {
      this.tables.add(name);
      this.add(action, 'Table', name);
    }
  }

  func(names: string[]): void {
    const id = names.filter((n) => n !== '').join('.');
    if (id === '') return;
    this.functions.add(id);
    this.add('db.execute', 'Function', id);
  }

  /** Walks a subtree: tables are read (db.select) unless a write statement names them as its target. */
  walk(v: unknown, read = 'db.select'): void {
    if (Array.isArray(v)) {
      for (const x of v) this.walk(x, read);
      return;
    }
    if (!isObj(v)) return;
    if (Array.isArray(v.funcname) && typeof v.funcformat === 'string') this.func(svals(v.funcname));
    if (isRangeVar(v)) {
      this.table(v, read);
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      const write = WRITES[k];
      if (write !== undefined && isObj(x)) {
        if (isRangeVar(x.relation)) this.table(x.relation, write);
        for (const [f, y] of Object.entries(x)) if (f !== 'relation') this.walk(y, 'db.select');
        continue;
      }
      if (k === 'intoClause' && isObj(x)) {
        if (isRangeVar(x.rel)) this.table(x.rel, 'db.ddl');
        continue;
      }
      this.walk(x, read);
    }
  }
}

function collectCtes(v: unknown, out: Set<string>): void {
  if (Array.isArray(v)) for (const x of v) collectCtes(x, out);
  else if (isObj(v)) {
    if (typeof v.ctename === 'string') out.add(v.ctename);
    for (const x of Object.values(v)) collectCtes(x, out);
  }
}

interface Classified {
  kind: StatementKind;
  c: Collector;
  prepares?: { name: string; inner: Node };
  executes?: string;
  deallocates?: string;
  /** COMMIT / END: commits the transaction's writes (an effect, whatever its kind says). */
  commits?: boolean;
}

const DATABASE = (c: Collector, action: string) => c.add(action, 'Database', '');

/** Kind and checks of one top-level statement node (`{ "SelectStmt": {...} }`). */
function classify(stmt: Node, searchPath: readonly string[]): Classified {
  const ctes = new Set<string>();
  collectCtes(stmt, ctes);
  const c = new Collector(searchPath, ctes);
  const [type, raw] = Object.entries(stmt)[0] ?? ['', {}];
  const body = isObj(raw) ? raw : {};
  const inner = (q: unknown): Classified => (isObj(q) ? classify(q, searchPath) : { kind: 'admin', c });
  const merge = (sub: Classified, kind = sub.kind): Classified => {
    for (const [k, v] of sub.c.checks) c.checks.set(k, v);
    for (const t of sub.c.tables) c.tables.add(t);
    for (const f of sub.c.functions) c.functions.add(f);
    return { ...sub, kind, c };
  };
  switch (type) {
    case 'SelectStmt':
      c.walk(stmt);
      return { kind: isObj(body.intoClause) ? 'ddl' : 'select', c };
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      c.walk(stmt);
      return { kind: type === 'InsertStmt' ? 'insert' : type === 'DeleteStmt' ? 'delete' : 'update', c };
    case 'TransactionStmt': {
      const k = String(body.kind);
      if (k === 'TRANS_STMT_PREPARE' || k === 'TRANS_STMT_COMMIT_PREPARED' || k === 'TRANS_STMT_ROLLBACK_PREPARED') {
        DATABASE(c, 'db.admin');
        return { kind: 'admin', c };
      }
      DATABASE(c, 'db.connect');
      return { kind: 'transaction', c, ...(k === 'TRANS_STMT_COMMIT' && { commits: true }) };
    }
    case 'VariableShowStmt':
    case 'DiscardStmt':
    case 'ClosePortalStmt':
      DATABASE(c, 'db.connect');
      return { kind: 'session', c };
    case 'VariableSetStmt': {
      const name = String(body.name ?? '').toLowerCase();
      // RESET ALL returns to the session's defaults: the pinned search_path, the lease's role.
      const safe = body.kind === 'VAR_RESET_ALL' || SAFE_SETTINGS.has(name);
      c.walk(body.args);
      DATABASE(c, safe ? 'db.connect' : 'db.admin');
      return { kind: safe ? 'session' : 'admin', c };
    }
    case 'ExplainStmt':
    case 'DeclareCursorStmt':
      return merge(inner(body.query));
    case 'FetchStmt':
      DATABASE(c, 'db.connect');
      return { kind: 'session', c };
    case 'PrepareStmt': {
      const sub = inner(body.query);
      merge(sub);
      return { kind: sub.kind, c, prepares: { name: String(body.name ?? ''), inner: body.query as Node } };
    }
    case 'ExecuteStmt':
      c.walk(body.params);
      return { kind: 'execute', c, executes: String(body.name ?? '') };
    case 'DeallocateStmt':
      DATABASE(c, 'db.connect');
      return { kind: 'session', c, deallocates: body.isall === true || body.name === undefined ? '*' : String(body.name) };
    case 'CopyStmt': {
      if (typeof body.filename === 'string' || body.is_program === true) {
        // COPY … PROGRAM / a server file: the server's shell and file system.
        c.walk(body.query);
        DATABASE(c, 'db.admin');
        return { kind: 'admin', c };
      }
      if (isRangeVar(body.relation)) {
        c.table(body.relation, body.is_from === true ? 'db.insert' : 'db.select');
        c.walk(body.whereClause);
        return { kind: body.is_from === true ? 'insert' : 'select', c };
      }
      return merge(inner(body.query));
    }
    case 'CallStmt':
      c.walk(body.funccall);
      return { kind: 'execute', c };
    case 'DropStmt': {
      if (TABLE_DROPS.has(String(body.removeType)) && Array.isArray(body.objects)) {
        for (const o of body.objects) {
          const names = isObj(o) && isObj(o.List) ? svals(o.List.items) : [];
          const rv = names.length === 1 ? { relname: names[0] } : { schemaname: names[names.length - 2], relname: names[names.length - 1] };
          if (names.length > 0) c.table(rv, 'db.ddl');
        }
      } else DATABASE(c, 'db.ddl');
      return { kind: 'ddl', c };
    }
  }
  if (ADMIN.has(type)) {
    DATABASE(c, 'db.admin');
    c.walk(body);
    return { kind: 'admin', c };
  }
  if (DDL.test(type)) {
    // The relations the statement names are its subject (db.ddl); anything it reads (a view's or
    // CREATE TABLE AS's query) is read.
    let named = false;
    for (const [f, v] of Object.entries(body)) {
      const list = Array.isArray(v) ? v : [v];
      const rvs = list.map((x) => (isObj(x) && isRangeVar(x.RangeVar) ? x.RangeVar : x)).filter(isRangeVar);
      if (rvs.length > 0 && rvs.length === list.length) {
        for (const rv of rvs) c.table(rv, 'db.ddl');
        named = true;
      } else if (f === 'into' && isObj(v) && isRangeVar(v.rel)) {
        c.table(v.rel, 'db.ddl');
        named = true;
      } else c.walk(v);
    }
    if (!named) DATABASE(c, 'db.ddl');
    return { kind: 'ddl', c };
  }
  // Anything not known above reaches the server as an administrator's statement.
  DATABASE(c, 'db.admin');
  c.walk(body);
  return { kind: 'admin', c };
}

// ── Text → plans, cached ─────────────────────────────────────────────────────────────────────

const CACHE_MAX = 2000;
const cache = new Map<string, Analysis>();
const fingerprints = new Map<string, string>();

/** Texts longer than this are analyzed every time: a hostile client must not fill memory through the cache. */
const CACHE_TEXT_MAX = 16_384;

function remember<V>(m: Map<string, V>, k: string, v: V): V {
  if (k.length > CACHE_TEXT_MAX) return v;
  if (m.size >= CACHE_MAX) m.delete(m.keys().next().value!);
  m.set(k, v);
  return v;
}

/** The action of a statement kind when it names no table or function (`SELECT 1`): decided on the Database. */
const KIND_ACTION: Record<StatementKind, string> = {
  select: 'db.select', insert: 'db.insert', update: 'db.update', delete: 'db.delete', ddl: 'db.ddl', admin: 'db.admin', execute: 'db.execute', transaction: 'db.connect', session: 'db.connect',
};

/** Actions that leave nothing behind: reading, session and transaction control (but COMMIT). */
const NO_EFFECT_ACTIONS: ReadonlySet<string> = new Set(['db.select', 'db.connect']);

/** A quoted string (standard, E'', U&'', or dollar-quoted) still in a normalized text. */
const LITERAL_LEFT = /'|\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

function planOf(text: string, stmt: Node, start: number, end: number, searchPath: readonly string[]): StatementPlan {
  const { normalizeSync, fingerprintSync } = parser();
  const cl = classify(stmt, searchPath);
  // Every statement is decided at least once; `EXECUTE name` is decided on what it runs (session).
  if (cl.c.checks.size === 0 && cl.executes === undefined) DATABASE(cl.c, KIND_ACTION[cl.kind]);
  let normalized: string;
  try {
    normalized = normalizeSync(text);
  } catch {
    normalized = '(could not normalize)';
  }
  const fingerprint = fingerprints.get(normalized) ?? remember(fingerprints, normalized, safe(() => fingerprintSync(text)));
  // The parser's normalization leaves literals in many utility statements (`OPTIONS (password
  // '…')`, `ALTER SYSTEM SET primary_conninfo = '…'`, `COPY … PROGRAM '…'`, PREPARE bodies,
  // CREATE TABLE AS, view bodies): a text that still holds a quoted string is not recorded, only
  // its kind (the fingerprint, taken above, still tells statements apart).
  if (LITERAL_LEFT.test(normalized)) normalized = `(${cl.kind} statement: text withheld, it holds literals)`;
  const plan: StatementPlan = {
    kind: cl.kind,
    checks: [...cl.c.checks.values()],
    tables: [...cl.c.tables].sort(),
    functions: [...cl.c.functions].sort(),
    normalized,
    fingerprint,
    start,
    end,
    // Judged by what it does, not by its kind: a SELECT may write through a WITH or a function.
    effects: cl.commits === true || cl.executes !== undefined || [...cl.c.checks.values()].some((c) => !NO_EFFECT_ACTIONS.has(c.action)),
  };
  if (cl.prepares) plan.prepares = { name: cl.prepares.name, plan: { ...planOf(text, cl.prepares.inner, start, end, searchPath), normalized, fingerprint } };
  if (cl.executes !== undefined) plan.executes = cl.executes;
  if (cl.deallocates !== undefined) plan.deallocates = cl.deallocates;
  return plan;
}

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return '';
  }
}

/**
 * Parses `sql` (one or more statements) and plans each. `searchPath` is the pinned search_path:
 * unqualified tables are decided in each of its schemas. Cached by (search path, text).
 */
export function analyze(sql: string, searchPath: readonly string[]): Analysis {
  const key = `${searchPath.join(',')}\u0000${sql}`;
  const hit = cache.get(key);
  if (hit) return hit;
  // The parser reads a C string: whatever followed a NUL would not be seen. Never in wire input
  // (its strings end at the first NUL), refused here all the same.
  if (sql.includes('\u0000')) return { error: 'the statement text contains a NUL byte' };
  // Texts that differ only in their literals (`… WHERE aid = 4711`) share a plan: normalize (one
  // pass of the parser) and reuse the plan of the normalized text. Only for one statement: the
  // byte ranges of several (to cut a query before a denied one) must be the text's own.
  const { normalizeSync } = parser();
  let normalized: string | undefined;
  try {
    normalized = normalizeSync(sql);
  } catch {
    normalized = undefined;
  }
  if (normalized !== undefined && normalized !== sql) {
    const shared = analyzeText(normalized, searchPath, `${searchPath.join(',')}\u0000${normalized}`);
    if ('statements' in shared && shared.statements.length === 1) {
      const bytes = Buffer.byteLength(sql, 'utf8');
      return { statements: [{ ...shared.statements[0]!, start: 0, end: bytes }] };
    }
  }
  return analyzeText(sql, searchPath, key);
}

function analyzeText(sql: string, searchPath: readonly string[], key: string): Analysis {
  const hit = cache.get(key);
  if (hit) return hit;
  const { parseSync } = parser();
  let stmts: { stmt?: Node; stmt_location?: number; stmt_len?: number }[];
  try {
    stmts = sql.trim() === '' ? [] : (parseSync(sql) as unknown as { stmts?: typeof stmts }).stmts ?? [];
  } catch (err) {
    return remember(cache, key, { error: String((err as Error).message ?? err).slice(0, 300) });
  }
  const bytes = Buffer.from(sql, 'utf8');
  const statements = stmts.map((s) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len !== undefined && s.stmt_len > 0 ? start + s.stmt_len : bytes.length;
    const text = bytes.toString('utf8', start, end);
    return planOf(text, s.stmt ?? {}, start, end, searchPath);
  });
  return remember(cache, key, { statements });
}
