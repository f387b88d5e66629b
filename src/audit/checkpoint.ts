// Signed checkpoints: Ed25519 over a domain-separated canonical statement of (stream, seq, hash,
// time, prev_seq). prev_seq links checkpoints so a deleted checkpoint row is noticed too.
import { createPublicKey, verify as verifySig, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import type { PublicKeyResolver } from './types.ts';

export interface CheckpointRow {
  stream: string;
  seq: number;
  hash: string;
  time: string;
  prev_seq: number;
  kid: string;
  sig: string;
}

const CONTEXT = 'portcullis/audit/v1/checkpoint\n';

/** The exact bytes signed for a checkpoint. */
export function checkpointMessage(c: Omit<CheckpointRow, 'kid' | 'sig'>): Uint8Array {
  const body = canonicalJson({ stream: c.stream, seq: c.seq, hash: c.hash, time: c.time, prev_seq: c.prev_seq });
  return Buffer.from(CONTEXT + body, 'utf8');
}

/** Verifies checkpoint signatures, caching imported keys by kid. */
export class CheckpointVerifier {
  readonly #resolve: PublicKeyResolver;
  readonly #keys = new Map<string, KeyObject | null>();
  constructor(resolve: PublicKeyResolver) {
    this.#resolve = resolve;
  }

  /** Returns undefined when valid, else the reason. */
  check(c: CheckpointRow): string | undefined {
    let key = this.#keys.get(c.kid);
    if (key === undefined) {
      key = null;
      try {
        const jwk = this.#resolve(c.kid);
        if (jwk && jwk.kty === 'OKP' && jwk.crv === 'Ed25519') key = createPublicKey({ key: jwk, format: 'jwk' });
      } catch {
        key = null;
      }
      this.#keys.set(c.kid, key);
    }
    if (key === null) return `checkpoint at seq ${c.seq} is signed by unknown or non-Ed25519 key "${c.kid}"`;
    let ok: boolean;
    try {
      ok = verifySig(null, checkpointMessage(c), key, Buffer.from(c.sig, 'base64url'));
    } catch {
      ok = false;
    }
    return ok ? undefined : `checkpoint at seq ${c.seq} has an invalid signature`;
  }
}
