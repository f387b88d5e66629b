// The `store` section: the embedded SQLite store in the data directory (default) or a PostgreSQL
// database shared by replicas, whose URL — password included — comes only from the environment.
import { ConfigError, forbidden, integer, oneOf, section, text, z } from '../common/validation.ts';

export type StoreConfig =
  | { kind: 'sqlite' }
  | {
      kind: 'postgres';
      /** Environment variable holding the URL (named in messages; the URL itself never is). */
      url_env: string;
      /** Resolved from `url_env` at load; never logged. */
      url: string;
      /** Most connections each replica opens. */
      pool: number;
    };

const ENV_NAME = text({ max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]{0,127}$/, hint: 'must be an environment variable name' });

/** `store` as written. */
export const STORE = section({
  kind: oneOf(['sqlite', 'postgres']).default('sqlite'),
  url_env: ENV_NAME.optional(),
  url: forbidden('the store URL carries a password and is not accepted inline; put it in an environment variable and name it in url_env'),
  pool: integer(1, 1000).optional(),
}).optional();

/** Checks the section against `kind` and reads the URL from the environment. */
export function storeConfig(s: z.output<typeof STORE>, env: NodeJS.ProcessEnv, path = 'store'): StoreConfig {
  if (s === undefined || s.kind === 'sqlite') {
    if (s?.url_env !== undefined) throw new ConfigError(`${path}.url_env`, 'only a postgres store has a URL (kind: postgres)');
    if (s?.pool !== undefined) throw new ConfigError(`${path}.pool`, 'only a postgres store has a pool (kind: postgres)');
    return { kind: 'sqlite' };
  }
  if (s.url_env === undefined) throw new ConfigError(`${path}.url_env`, 'is required for a postgres store: name the environment variable holding its URL, e.g. PORTCULLIS_STORE_URL');
  const url = env[s.url_env];
  if (url === undefined || url === '') throw new ConfigError(`${path}.url_env`, `environment variable ${s.url_env} is not set: it must hold the store's URL, e.g. postgres://portcullis:…@db:5432/portcullis?sslmode=verify-full`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${path}.url_env`, `environment variable ${s.url_env} does not hold a URL (expected postgres://user:password@host:5432/database)`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw new ConfigError(`${path}.url_env`, `environment variable ${s.url_env} must hold a postgres:// URL, not ${parsed.protocol}//…`);
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode !== null && !['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'].includes(sslmode)) {
    throw new ConfigError(`${path}.url_env`, `sslmode "${sslmode.slice(0, 32)}" in ${s.url_env} is not one of disable, prefer, require, verify-ca, verify-full`);
  }
  return { kind: 'postgres', url_env: s.url_env, url, pool: s.pool ?? 10 };
}
