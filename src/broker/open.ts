// Opening one configuration's storage and keys: the databases, the keyring, the SPIFFE CAs, the
// identity registry, and the signing keys derived from the keyring.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import type { PortcullisConfig } from '../config/types.ts';
import { systemClock } from '../common/clock.ts';
import { SqliteStore } from '../store/sqlite/index.ts';
import { PostgresStore } from '../store/postgres/index.ts';
import type { Store } from '../store/index.ts';
import { loadMasterKey } from '../crypto/masterkey.ts';
import { Keyring } from '../crypto/keyring.ts';
import { SpiffeCaStore, sshCaFromKey } from '../credentials/index.ts';
import { IdentityRegistry } from '../inventory/identities.ts';
import type { JwtSigner, SshCa } from '../credentials/index.ts';
import type { BrokerOptions } from './types.ts';

/** What `open` prepares before the constructor: the store, the keyring, the SPIFFE CAs, the identity registry. */
export interface Opened {
  store: Store;
  keyring: Keyring;
  spiffeCa: SpiffeCaStore;
  /** Loaded from the store before the constructor (its reads are synchronous). */
  identities: IdentityRegistry;
}

/**
 * Opens the store, the keyring and the SPIFFE CAs and hands them to `assemble`; if any of it
 * fails, `assemble` included, the databases are closed again before the error goes on.
 */
export async function openStorage<T>(config: PortcullisConfig, options: BrokerOptions, assemble: (opened: Opened) => T): Promise<T> {
  const clock = options.clock ?? systemClock;
  const lw = options.leaseWrites;
  const store: Store =
    config.store.kind === 'postgres'
      ? await PostgresStore.open(config.store.url, { pool: config.store.pool, ...(options.migrate !== undefined && { migrate: options.migrate }) })
      : SqliteStore.open(config.data_dir, { leases: lw === undefined ? {} : lw === 'per-write' ? { batchWrites: false } : { writer: lw } });
  try {
    const master = loadMasterKey(config.data_dir, options.env ?? process.env);
    const keyring = await Keyring.open(store, { masterKey: master.key, clock });
    // SPIFFE CAs are made before the issuers that use them (creating one is async).
    const spiffeCa = SpiffeCaStore.open(store, master.key, clock);
    for (const td of new Set(config.targets.flatMap((t) => (t.kind === 'spiffe-x509' ? [t.trust_domain] : [])))) await spiffeCa.ensure(td);
    const identities = await IdentityRegistry.open(store, clock, config.boundaries, { shared: store.kind === 'postgres' });
    return assemble({ store, keyring, spiffeCa, identities });
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** OpenSSH KRL of revoked SSH certificates, in the data dir; point sshd's RevokedKeys at it. */
export function sshKrlPath(dataDir: string): string {
  return join(dataDir, 'ssh-revoked.krl');
}

/** sshd refuses every key while its RevokedKeys file is missing: start with an empty KRL. */
export function ensureSshKrl(config: PortcullisConfig): void {
  const path = sshKrlPath(config.data_dir);
  if (!config.targets.some((t) => t.kind === 'ssh') || existsSync(path)) return;
  // With a PostgreSQL store nothing else creates data_dir.
  mkdirSync(config.data_dir, { recursive: true, mode: 0o700 });
  writeFileSync(path, '', { mode: 0o644 });
}

/** The SSH user CA is derived from a sealed 32-byte keyring secret, so it survives restarts. */
export function sshUserCa(keyring: Keyring): SshCa {
  return sshCaFromKey(ed25519FromSeed(keyring.secret('ssh-user-ca')));
}

/** The SSH host CA (host certificates, `ssh-host` targets): another sealed seed, never the user CA's. */
export function sshHostCa(keyring: Keyring): SshCa {
  return sshCaFromKey(ed25519FromSeed(keyring.secret('ssh-host-ca')), 'portcullis-host-ca');
}

function ed25519FromSeed(seed: Uint8Array) {
  const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
  return createPrivateKey({ key: Buffer.concat([pkcs8Prefix, Buffer.from(seed)]), format: 'der', type: 'pkcs8' });
}

/** Access tokens are signed with the keyring's active `token` key (looked up at each use, so rotation applies). */
export function tokenSigner(keyring: Keyring): JwtSigner {
  return {
    get kid() {
      return keyring.activeKey('token').kid;
    },
    alg: 'EdDSA',
    sign: (claims, header) => keyring.signJwt('token', claims, typeof header.typ === 'string' ? { typ: header.typ } : {}),
  };
}
