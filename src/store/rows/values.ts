// Reading column values into domain values the same way on both stores (a row is a plain object of column → value).

export type Row = Record<string, unknown>;

/** A nullable text column. */
export const strOrNull = (v: unknown): string | null => (v as string | null) ?? null;

/** A nullable integer column (SQLite gives numbers; PostgreSQL's int8 arrives as a number too, see postgres/db.ts). */
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Epoch milliseconds as an ISO 8601 string. */
export const iso = (ms: unknown): string => new Date(Number(ms)).toISOString();
export const isoOrNull = (ms: unknown): string | null => (ms === null || ms === undefined ? null : iso(ms));

/** The `id` of each row. */
export const ids = (rows: readonly unknown[]): string[] => (rows as readonly { id: string }[]).map((r) => r.id);
