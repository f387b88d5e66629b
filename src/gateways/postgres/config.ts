// A `kind: postgres` gateway in portcullis.yaml: where it listens, the postgres target it opens
// upstream connections to (with a lease of `permission`), TLS toward clients, what is recorded.
import { duration, flag, integer, mapping, text, texts, z } from '../../common/validation.ts';
import { gatewayFields } from '../plugin.ts';

const PG_IDENT_RE = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

export interface PostgresGatewayConfig {
  name: string;
  kind: 'postgres';
  listen: { host: string; port: number };
  target: string;
  /** The target's permission set the upstream lease is issued with (default: the target's only one). */
  permission?: string;
  /** Lifetime of the upstream lease; the session ends when it does (default: the target's default TTL). */
  lease_ttl_ms?: number;
  /** TLS toward clients. With it, a client that does not start TLS is refused. Paths as written (resolved against the config's folder). */
  tls?: { cert: string; key: string };
  /** Schemas the upstream `search_path` is pinned to (unqualified names resolve there; default `public`). */
  search_path: string[];
  /** Opt-in: the raw statement text in each record (default: normalized, literals replaced by $n). */
  record_raw_statements: boolean;
  /** Opt-in (break-glass reviews): the result rows in each record. */
  record_results: boolean;
  /** Largest client message accepted, bytes (default 8 MiB). */
  max_message_bytes: number;
  /** How long a client has to authenticate (default 30 s). */
  auth_timeout_ms: number;
}

export const postgresGatewayConfig = mapping({
  ...gatewayFields('postgres'),
  permission: text({ max: 128 }).optional(),
  lease_ttl: duration({ min: 10_000, max: 7 * 86_400_000, range: 'must be between 10s and 7d' }).optional(),
  tls: mapping({ cert: text({ max: 1024 }), key: text({ max: 1024 }) }).optional(),
  search_path: texts({ nonEmpty: true, pattern: PG_IDENT_RE, hint: 'expected a schema name' }).optional(),
  record_raw_statements: flag().optional(),
  record_results: flag().optional(),
  max_message_bytes: integer(1024, 1 << 30).optional(),
  auth_timeout: duration({ min: 1000, max: 600_000, range: 'must be between 1s and 10m' }).optional(),
}).transform(
  (o): PostgresGatewayConfig => ({
    name: o.name,
    kind: 'postgres',
    listen: o.listen,
    target: o.target,
    ...(o.permission !== undefined && { permission: o.permission }),
    ...(o.lease_ttl !== undefined && { lease_ttl_ms: o.lease_ttl }),
    ...(o.tls !== undefined && { tls: o.tls }),
    search_path: o.search_path ?? ['public'],
    record_raw_statements: o.record_raw_statements ?? false,
    record_results: o.record_results ?? false,
    max_message_bytes: o.max_message_bytes ?? 8 << 20,
    auth_timeout_ms: o.auth_timeout ?? 30_000,
  }),
) as unknown as z.ZodType<PostgresGatewayConfig>;
