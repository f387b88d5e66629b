// The master key that wraps every private key at rest. From PORTCULLIS_MASTER_KEY (32 bytes as
// base64 or hex) or else a generated `master.key` file (mode 0600) in the data directory.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MASTER_KEY_ENV = 'PORTCULLIS_MASTER_KEY';
const MASTER_KEY_FILE = 'master.key';

/** The master key is missing, malformed, unreadable or does not match the data directory. */
export class MasterKeyError extends Error {
  readonly code = 'master_key_error';
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

/** Parses 32 bytes given as 64 hex digits or base64/base64url. Never echoes the value. */
export function parseMasterKey(text: string, source: string): Uint8Array {
  const s = text.trim();
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) bytes = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(s)) bytes = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes === undefined || bytes.length !== 32) {
    throw new MasterKeyError(`${source}: master key must be 32 bytes as 64 hex digits or base64`);
  }
  return new Uint8Array(bytes);
}

export interface MasterKeySource {
  key: Uint8Array;
  /** `env` or the path of the key file; for logs (never the key itself). */
  origin: string;
  created: boolean;
}

/**
 * Loads the master key: the environment wins; otherwise `<dataDir>/master.key`, created with
 * mode 0600 when absent. A key file readable by group/others is refused.
 */
export function loadMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKeySource {
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { key: parseMasterKey(fromEnv, MASTER_KEY_ENV), origin: 'env', created: false };
  const path = join(dataDir, MASTER_KEY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new MasterKeyError(`${path}: cannot read master key file`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    // wx: never overwrite a key file another process created meanwhile.
    try {
      writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadMasterKey(dataDir, env);
      throw err;
    }
    chmodSync(path, 0o600);
    return { key: new Uint8Array(key), origin: path, created: true };
  }
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
    throw new MasterKeyError(`${path}: master key file must not be readable by group or others (chmod 600)`);
  }
  return { key: parseMasterKey(text, path), origin: path, created: false };
}
