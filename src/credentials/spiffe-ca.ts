// Portcullis' own SPIFFE certificate authority, one per trust domain, kept in the store (KeyStore).
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
import type { KeyStore, SpiffeCaGeneration } from '../crypto/ports.ts';
import type { ChangeFeed } from '../store/ports.ts';
import { createIntermediate, generateSpiffeRoot } from './issuers/spiffe-x509/x509-svid.ts';
import type { CaMaterial } from './issuers/spiffe-x509/x509-svid.ts';

const DAY = 86_400_000;
/** Lifetime of one generation (the intermediate; its root outlives it by a day). */
const GENERATION_TTL_MS = 90 * DAY;
/** A new generation is made when the current one has less than this left: longer than any SVID (24h cap). */
const ROTATE_BEFORE_MS = 7 * DAY;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

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

/** The store as the SPIFFE CAs use it: the key repositories and the replicas' change feed. */
export interface SpiffeCaStoreDeps {
  readonly keys: KeyStore;
  readonly changes?: ChangeFeed;
}

export class SpiffeCaStore {
  readonly #store: SpiffeCaStoreDeps;
  readonly #master: Uint8Array;
  readonly #clock: Clock;
  // Authorities loaded by `ensure` (at open), and again when another replica announces a new
  // generation (or notices may have been missed).
  readonly #loaded = new Map<string, { authority: SpiffeAuthority; generation: number }>();

  static open(store: SpiffeCaStoreDeps, masterKey: Uint8Array, clock: Clock): SpiffeCaStore {
    return new SpiffeCaStore(store, masterKey, clock);
  }

  private constructor(store: SpiffeCaStoreDeps, masterKey: Uint8Array, clock: Clock) {
    this.#store = store;
    this.#master = masterKey;
    this.#clock = clock;
    store.changes?.subscribe('keys', async (key) => {
      const td = key.startsWith('spiffe:') ? key.slice(7) : undefined;
      if (td !== undefined && this.#loaded.has(td)) await this.ensure(td);
    });
    store.changes?.onResync(async () => {
      for (const td of [...this.#loaded.keys()]) await this.ensure(td);
    });
  }

  /** The trust domain's authority, creating the first (or next) generation when needed. */
  async ensure(trustDomain: string): Promise<SpiffeAuthority> {
    const now = this.#clock.now();
    const repo = this.#store.keys.spiffeCa;
    let rows = await repo.generations(trustDomain);
    if (rows.length === 0 || rows[0]!.notAfter - now < ROTATE_BEFORE_MS) {
      // Made outside any transaction (key generation is slow); if another replica stored this
      // generation first, ours is dropped and theirs is read back below.
      await repo.insert(await this.#create(trustDomain, (rows[0]?.generation ?? 0) + 1, now));
      await this.#store.changes?.publish('keys', `spiffe:${trustDomain}`);
      rows = await repo.generations(trustDomain);
    }
    const live = rows.filter((r) => r.notAfter > now);
    const current = live[0]!;
    const authority: SpiffeAuthority = {
      trustDomain,
      root: new x509.X509Certificate(current.rootPem),
      intermediate: this.#openIntermediate(current),
      roots: live.map((r) => new x509.X509Certificate(r.rootPem)),
      intermediates: live.map((r) => r.intermediatePem),
    };
    this.#loaded.set(trustDomain, { authority, generation: rows[0]!.generation });
    return authority;
  }

  /** Authorities loaded by `ensure`, by trust domain. */
  authorities(): Map<string, SpiffeAuthority> {
    return new Map([...this.#loaded].map(([td, l]) => [td, l.authority]));
  }

  /** The bundle relying parties fetch (`GET /v1/spiffe/bundle/:trust_domain`); undefined for a domain we do not serve. */
  bundle(trustDomain: string): SpiffeBundle | undefined {
    const loaded = this.#loaded.get(trustDomain);
    if (!loaded) return undefined;
    return {
      keys: loaded.authority.roots.map((root) => {
        const jwk = createPublicKey(root.toString('pem')).export({ format: 'jwk' });
        return { ...jwk, use: 'x509-svid', x5c: [Buffer.from(root.rawData).toString('base64')] };
      }),
      spiffe_sequence: loaded.generation,
      spiffe_refresh_hint: 3600,
    };
  }

  /** PEM of every live root and intermediate of every loaded domain: a TLS server's `ca`. */
  trustPem(): string {
    return [...this.#loaded.values()].flatMap(({ authority: a }) => [...a.roots.map((r) => r.toString('pem')), ...a.intermediates]).join('\n');
  }

  async #create(trustDomain: string, generation: number, now: number): Promise<SpiffeCaGeneration> {
    // The root lives in this function only; see the file comment for why its key is never stored.
    const root = await generateSpiffeRoot(trustDomain, this.#clock, GENERATION_TTL_MS + DAY);
    const intermediate = await createIntermediate(root, trustDomain, this.#clock, GENERATION_TTL_MS);
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', intermediate.keys.privateKey));
    try {
      return {
        trustDomain,
        generation,
        rootPem: root.cert.toString('pem'),
        intermediatePem: intermediate.cert.toString('pem'),
        intermediateKeySealed: seal(this.#master, der, aad(trustDomain, generation)),
        createdAt: now,
        notAfter: intermediate.cert.notAfter.getTime(),
      };
    } finally {
      der.fill(0);
    }
  }

  #openIntermediate(g: SpiffeCaGeneration): CaMaterial {
    let der: Buffer;
    try {
      der = open(this.#master, g.intermediateKeySealed, aad(g.trustDomain, g.generation));
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`SPIFFE intermediate for ${g.trustDomain} cannot be decrypted with this master key`);
      throw e;
    }
    try {
      const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).toCryptoKey(EC, false, ['sign']);
      const publicKey = createPublicKey(g.intermediatePem).toCryptoKey(EC, true, ['verify']);
      return { cert: new x509.X509Certificate(g.intermediatePem), keys: { privateKey, publicKey } as webcrypto.CryptoKeyPair };
    } finally {
      der.fill(0);
    }
  }
}

function aad(trustDomain: string, generation: number): string {
  return `spiffe_ca:${trustDomain}:${generation}`;
}
