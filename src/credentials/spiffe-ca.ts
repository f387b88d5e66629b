// Portcullis' own SPIFFE certificate authority, one per trust domain, persisted in SQLite.
// Each generation is a root and the intermediate it signed. The root's private key is used once,
// to sign the intermediate, and then dropped: a root key that never reaches disk or a backup
// cannot leak from them, and nothing needs it again, because a new generation (new root, new
// intermediate) replaces an intermediate that nears its end, with both roots in the bundle for
// the overlap. The intermediate's private key signs every SVID, so it is kept, sealed under the
// master key (crypto/envelope.ts) and bound to its row by the AAD.
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { DecryptionFailed, open, seal } from '../crypto/envelope.ts';
import { MasterKeyError } from '../crypto/masterkey.ts';
import * as x509 from '../crypto/x509.ts';
import type { Db } from '../store/sqlite/db.ts';
import { migrate } from '../store/sqlite/db.ts';
import { createIntermediate, generateSpiffeRoot } from './issuers/spiffe-x509/x509-svid.ts';
import type { CaMaterial } from './issuers/spiffe-x509/x509-svid.ts';

const MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE spiffe_ca (
           trust_domain TEXT NOT NULL,
           generation INTEGER NOT NULL,
           root_pem TEXT NOT NULL,
           intermediate_pem TEXT NOT NULL,
           intermediate_key_sealed BLOB NOT NULL,
           created_at INTEGER NOT NULL,
           not_after INTEGER NOT NULL,
           PRIMARY KEY (trust_domain, generation));`,
  },
] as const;

const DAY = 86_400_000;
/** Lifetime of one generation (the intermediate; its root outlives it by a day). */
const GENERATION_TTL_MS = 90 * DAY;
/** A new generation is made when the current one has less than this left: longer than any SVID (24h cap). */
const ROTATE_BEFORE_MS = 7 * DAY;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

interface Row {
  trust_domain: string;
  generation: number;
  root_pem: string;
  intermediate_pem: string;
  intermediate_key_sealed: Uint8Array;
  not_after: number;
}

/** The issuing CA of a trust domain, and every root relying parties should trust now. */
export interface SpiffeAuthority {
  trustDomain: string;
  root: x509.X509Certificate;
  intermediate: CaMaterial;
  /** Roots of generations whose intermediate is still valid, newest first (the bundle). */
  roots: x509.X509Certificate[];
  /** Their intermediates (PEM), for TLS servers that build the peer chain. */
  intermediates: string[];
}

/** SPIFFE bundle format: a JWK set whose `x509-svid` keys carry the root in `x5c`. */
export interface SpiffeBundle {
  keys: Record<string, unknown>[];
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

export class SpiffeCaStore {
  readonly #db: Db;
  readonly #master: Uint8Array;
  readonly #clock: Clock;
  readonly #loaded = new Map<string, SpiffeAuthority>();

  static open(db: Db, masterKey: Uint8Array, clock: Clock): SpiffeCaStore {
    migrate(db, 'spiffe_ca', MIGRATIONS);
    return new SpiffeCaStore(db, masterKey, clock);
  }

  private constructor(db: Db, masterKey: Uint8Array, clock: Clock) {
    this.#db = db;
    this.#master = masterKey;
    this.#clock = clock;
  }

  /** The trust domain's authority, creating the first (or next) generation when needed. */
  async ensure(trustDomain: string): Promise<SpiffeAuthority> {
    const now = this.#clock.now();
    let rows = this.#rows(trustDomain);
    if (rows.length === 0 || rows[0]!.not_after - now < ROTATE_BEFORE_MS) {
      await this.#create(trustDomain, (rows[0]?.generation ?? 0) + 1, now);
      rows = this.#rows(trustDomain);
    }
    const live = rows.filter((r) => r.not_after > now);
    const current = live[0]!;
    const authority: SpiffeAuthority = {
      trustDomain,
      root: new x509.X509Certificate(current.root_pem),
      intermediate: this.#openIntermediate(current),
      roots: live.map((r) => new x509.X509Certificate(r.root_pem)),
      intermediates: live.map((r) => r.intermediate_pem),
    };
    this.#loaded.set(trustDomain, authority);
    return authority;
  }

  /** Authorities loaded by `ensure`, by trust domain. */
  authorities(): Map<string, SpiffeAuthority> {
    return new Map(this.#loaded);
  }

  /** The bundle relying parties fetch (`GET /v1/spiffe/bundle/:trust_domain`); undefined for a domain we do not serve. */
  bundle(trustDomain: string): SpiffeBundle | undefined {
    const a = this.#loaded.get(trustDomain);
    if (!a) return undefined;
    const gen = this.#rows(trustDomain)[0]?.generation ?? 0;
    return {
      keys: a.roots.map((root) => {
        const jwk = createPublicKey(root.toString('pem')).export({ format: 'jwk' });
        return { ...jwk, use: 'x509-svid', x5c: [Buffer.from(root.rawData).toString('base64')] };
      }),
      spiffe_sequence: gen,
      spiffe_refresh_hint: 3600,
    };
  }

  /** PEM of every live root and intermediate of every loaded domain: a TLS server's `ca`. */
  trustPem(): string {
    return [...this.#loaded.values()].flatMap((a) => [...a.roots.map((r) => r.toString('pem')), ...a.intermediates]).join('\n');
  }

  #rows(trustDomain: string): Row[] {
    return this.#db
      .prepare('SELECT trust_domain, generation, root_pem, intermediate_pem, intermediate_key_sealed, not_after FROM spiffe_ca WHERE trust_domain = ? ORDER BY generation DESC')
      .all(trustDomain) as unknown as Row[];
  }

  async #create(trustDomain: string, generation: number, now: number): Promise<void> {
    // The root lives in this function only; see the file comment for why its key is never stored.
    const root = await generateSpiffeRoot(trustDomain, this.#clock, GENERATION_TTL_MS + DAY);
    const intermediate = await createIntermediate(root, trustDomain, this.#clock, GENERATION_TTL_MS);
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', intermediate.keys.privateKey));
    try {
      this.#db
        .prepare('INSERT OR IGNORE INTO spiffe_ca (trust_domain, generation, root_pem, intermediate_pem, intermediate_key_sealed, created_at, not_after) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(trustDomain, generation, root.cert.toString('pem'), intermediate.cert.toString('pem'), seal(this.#master, der, aad(trustDomain, generation)), now, intermediate.cert.notAfter.getTime());
    } finally {
      der.fill(0);
    }
  }

  #openIntermediate(row: Row): CaMaterial {
    let der: Buffer;
    try {
      der = open(this.#master, row.intermediate_key_sealed, aad(row.trust_domain, row.generation));
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`SPIFFE intermediate for ${row.trust_domain} cannot be decrypted with this master key`);
      throw e;
    }
    try {
      const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).toCryptoKey(EC, false, ['sign']);
      const publicKey = createPublicKey(row.intermediate_pem).toCryptoKey(EC, true, ['verify']);
      return { cert: new x509.X509Certificate(row.intermediate_pem), keys: { privateKey, publicKey } as webcrypto.CryptoKeyPair };
    } finally {
      der.fill(0);
    }
  }
}

function aad(trustDomain: string, generation: number): string {
  return `spiffe_ca:${trustDomain}:${generation}`;
}
