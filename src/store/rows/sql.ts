// What SQL text differs between the SQLite and PostgreSQL stores (placeholders, JSON casts, list matches), as a parameter for the shared row modules.

/** Builds statement text for one engine; values are bound in the order their placeholders appear. */
export interface SqlDialect {
  /** The placeholder of the n-th bound value (counted from 1): `?` on SQLite, `$n` on PostgreSQL. */
  placeholder(n: number): string;
  /** The placeholder of the n-th bound value when it is a JSON document bound as text (PostgreSQL casts it to JSONB). */
  jsonPlaceholder(n: number): string;
  /** A condition that `column` is one of `list` (false for none), binding what it needs into `values`. */
  oneOf(column: string, list: readonly unknown[], values: unknown[]): string;
}

/** Binds `v` into `values` and answers its placeholder. */
export function bind(d: SqlDialect, values: unknown[], v: unknown): string {
  return d.placeholder(values.push(v));
}

/** The placeholders of the first `count` bound values (`?, ?, ?` or `$1, $2, $3`). */
export function placeholders(d: SqlDialect, count: number): string {
  return Array.from({ length: count }, (_, i) => d.placeholder(i + 1)).join(', ');
}

/** One condition of a WHERE: SQL with a `?` for each value that follows, in order (and no other `?`). */
export type Condition = readonly [sql: string, ...values: unknown[]];

/**
 * `WHERE a AND b …` (or nothing) from conditions, their `?`s rewritten to the dialect's
 * placeholders and their values bound into `values` (after any already there).
 */
export function where(d: SqlDialect, values: unknown[], conds: readonly Condition[]): string {
  const parts = conds.map(([sql, ...vs]) => {
    let i = 0;
    return sql.replaceAll('?', () => bind(d, values, vs[i++]));
  });
  return parts.length ? `WHERE ${parts.join(' AND ')}` : '';
}

/** `INSERT INTO table (columns) VALUES (placeholders)` for one row given as column → value, and its values in order. */
export function insertRow(d: SqlDialect, table: string, row: Record<string, unknown>): { sql: string; values: unknown[] } {
  const columns = Object.keys(row);
  return { sql: `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${placeholders(d, columns.length)})`, values: Object.values(row) };
}
