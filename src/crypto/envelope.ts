// AES-256-GCM envelope encryption. Each sealed value gets its own random data key (DEK); the DEK
// is wrapped under the master key (KEK). A master key rotation then only re-wraps 60-byte DEKs.
// `aad` binds a ciphertext to its row (e.g. kid + purpose) so rows cannot be swapped in the db.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 1;
const IV = 12;
const TAG = 16;
const KEY = 32;
const WRAPPED = IV + KEY + TAG;

/** The master key did not open a sealed value: wrong key, or the value was altered. */
export class DecryptionFailed extends Error {
  readonly code = 'decryption_failed';
  constructor(message = 'sealed value could not be opened (wrong master key or altered data)') {
    super(message);
    this.name = 'DecryptionFailed';
  }
}

function gcmSeal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const iv = randomBytes(IV);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]);
}

function gcmOpen(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  if (sealed.length < IV + TAG) throw new DecryptionFailed('sealed value is truncated');
  const b = Buffer.from(sealed);
  const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, IV));
  d.setAAD(aad);
  d.setAuthTag(b.subarray(b.length - TAG));
  try {
    return Buffer.concat([d.update(b.subarray(IV, b.length - TAG)), d.final()]);
  } catch {
    throw new DecryptionFailed();
  }
}

/** Format: version(1) | wrapped DEK (iv|ct|tag, 60) | iv | ciphertext | tag. */
export function seal(masterKey: Uint8Array, plaintext: Uint8Array, aad: string): Buffer {
  assertKey(masterKey);
  const a = Buffer.from(aad, 'utf8');
  const dek = randomBytes(KEY);
  try {
    return Buffer.concat([Buffer.of(VERSION), gcmSeal(masterKey, dek, a), gcmSeal(dek, plaintext, a)]);
  } finally {
    dek.fill(0);
  }
}

export function open(masterKey: Uint8Array, sealed: Uint8Array, aad: string): Buffer {
  assertKey(masterKey);
  if (sealed.length < 1 + WRAPPED + IV + TAG || sealed[0] !== VERSION) {
    throw new DecryptionFailed('sealed value has an unknown format');
  }
  const a = Buffer.from(aad, 'utf8');
  const dek = gcmOpen(masterKey, sealed.subarray(1, 1 + WRAPPED), a);
  try {
    return gcmOpen(dek, sealed.subarray(1 + WRAPPED), a);
  } finally {
    dek.fill(0);
  }
}

function assertKey(k: Uint8Array): void {
  if (k.length !== KEY) throw new RangeError('master key must be 32 bytes');
}
