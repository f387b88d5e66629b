// The API key format: `pcx_` + 42 base62 (10-char key id + 32-char secret, ~190 bits) + 6 base62
// CRC32 of the body. The checksum lets a secret scanner tell a real Portcullis key from random
// text offline (no call home); it is not a security control — the secret is.
import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const API_KEY_PREFIX = 'pcx_';
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KEY_ID_LENGTH = 10;
const SECRET_LENGTH = 32;
const BODY_LENGTH = KEY_ID_LENGTH + SECRET_LENGTH;
const CHECKSUM_LENGTH = 6; // 62^6 > 2^32
const SHAPE = /^pcx_([0-9A-Za-z]{42})([0-9A-Za-z]{6})$/;
/** For scanners: candidate keys inside arbitrary text. */
const API_KEY_PATTERN = /\bpcx_[0-9A-Za-z]{48}\b/g;

function randomBase62(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(62)];
  return s;
}

export function checksum(body: string): string {
  let v = crc32(body) >>> 0;
  let s = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    s = ALPHABET[v % 62] + s;
    v = Math.floor(v / 62);
  }
  return s;
}

/** A fresh key and its public id (`apikey:<10 base62>`). */
export function generateApiKey(): { key: string; id: string } {
  const body = randomBase62(BODY_LENGTH);
  return { key: `${API_KEY_PREFIX}${body}${checksum(body)}`, id: `apikey:${body.slice(0, KEY_ID_LENGTH)}` };
}

/** Prefix, shape and checksum: true for anything Portcullis could have minted. */
export function looksLikeApiKey(text: string): boolean {
  if (typeof text !== 'string') return false;
  const m = SHAPE.exec(text);
  return m !== null && checksum(m[1]!) === m[2];
}

/** Every checksum-valid key in a text (what a leak scanner reports). */
export function findApiKeys(text: string): string[] {
  return [...text.matchAll(API_KEY_PATTERN)].map((m) => m[0]).filter(looksLikeApiKey);
}

/** The public id of a well-formed key (callers check `looksLikeApiKey` first). */
export function apiKeyId(key: string): string {
  return `apikey:${key.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + KEY_ID_LENGTH)}`;
}
