// What one credential issuer kind is (SPIRE's plugin catalog, Teleport's database engines): its
// kind name, its target config schema, the request fields it reads, its Cedar additions, how the
// CLI shows what it issued, and a factory. registry.ts lists the kinds; nothing else names them.
import type { Clock } from '../../common/clock.ts';
import { InvalidInput } from '../../common/errors.ts';
import { duration, text, z } from '../../common/validation.ts';
import type * as x509 from '../../crypto/x509.ts';
import type { CaMaterial } from './spiffe-x509/x509-svid.ts';
import type { SshCa } from './ssh/ssh.ts';
import type { CredentialIssuer, JwtSigner } from '../types.ts';
import type { LeaseRepository } from '../ports.ts';

/** What the built-in issuers may need from the broker; each kind uses only its part. */
export interface IssuerDeps {
  clock: Clock;
  /** Environment for secrets named in config (`password_env`). Default process.env. */
  env?: Record<string, string | undefined>;
  /** SSH user CA (ssh targets); `krlPath` enables immediate revocation through sshd RevokedKeys. */
  ssh?: { ca: SshCa; krlPath?: string; hostCa?: SshCa };
  /** The lease table, read-only: issuers whose revocation list derives from it (the SSH KRL). */
  leases?: Pick<LeaseRepository, 'list'>;
  /** Signs access tokens (api targets); its public key must be in the broker's JWKS. */
  signer?: JwtSigner;
  /** `iss` of access tokens: the broker's external URL. */
  issuerUrl?: string;
  /** SPIFFE CAs by trust domain: root certificate (the bundle) and the issuing intermediate. */
  spiffe?: Record<string, { root: x509.X509Certificate; intermediate: CaMaterial }>;
}

/** What every target has, whatever its kind (times in milliseconds). */
export interface TargetBase {
  name: string;
  kind: string;
  max_ttl_ms: number;
  default_ttl_ms: number;
}

/** An issued credential as the CLI receives it (lease fields as the API returns them). */
export interface CliIssued {
  lease: Record<string, unknown>;
  credential: Record<string, unknown>;
}

/** How `portcullis creds issue <kind>` shows an issued credential. Pure: the CLI writes the files and prints. */
export interface IssuerCli {
  /** Files to write first (mode 0600 unless given), e.g. a libpq passfile: secrets stay off the command line. */
  files?(issued: CliIssued, home: string): { path: string; content: string; mode?: number }[];
  /** What a person reads (`--json` prints the API answer instead). */
  text(issued: CliIssued, files: string[]): string;
  /** `--env`: shell `export` lines to eval, and a note for stderr. Kinds without it refuse `--env`. */
  env?(issued: CliIssued, files: string[]): { vars: Record<string, string>; note: string };
}

export interface IssuerPlugin<T extends TargetBase = TargetBase> {
  /** `kind:` of a target in portcullis.yaml. */
  readonly kind: T['kind'];
  /** Cedar entity type `credential.issue` is decided on for this kind's targets (`<type>::"<target name>"`). */
  readonly resourceType: string;
  /** Cedar schema text this kind adds: its own entity types and actions (merged into the built-in schema). */
  readonly cedar?: string;
  /** One `targets[i]` entry as written → the typed target (zod; z.toJSONSchema documents it). */
  readonly config: z.ZodType<T>;
  /** The fields of POST /v1/credentials this kind reads, beyond the common ones, and the issuer params they become. */
  readonly request: { fields: z.ZodRawShape; params(body: Record<string, unknown>): Record<string, unknown> };
  /** `creds issue <kind>` in the CLI; `hint` instead points to the command that serves this kind. */
  readonly cli?: IssuerCli | { hint: string };
  /** Builds the issuer of one target. */
  create(target: T, deps: IssuerDeps): CredentialIssuer;
}


/** A dependency the broker must provide for this kind, or a named refusal. */
export function need<V>(v: V | undefined, target: TargetBase, what: string): V {
  if (v === undefined) throw new InvalidInput(`target ${target.name}: ${target.kind} targets need ${what}`, 'kind');
  return v;
}

// ── Config parts every kind shares ───────────────────────────────────────────────────────────

export const TARGET_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const HARD_MAX_TTL_MS = 7 * 86_400_000;

/** `name`, `max_ttl` and `default_ttl` of a target, in its `targets[i]` mapping. */
export function targetFields<K extends string>(kind: K) {
  return {
    name: text({ pattern: TARGET_NAME_RE, hint: 'expected lowercase letters, digits, . _ -' }),
    kind: z.literal(kind),
    max_ttl: duration({ min: 1000, max: HARD_MAX_TTL_MS, range: 'must be between 1s and 7d' }),
    default_ttl: duration().optional(),
  };
}

/**
 * The TTLs of a target: `default_ttl` (default: 15m, or max_ttl when shorter) within `max_ttl`,
 * which the kind may cap further (`cap`: access tokens 1h, SVIDs 24h).
 */
export function ttls(
  o: { max_ttl: number; default_ttl?: number | undefined },
  ctx: z.core.$RefinementCtx,
  cap?: { ms: number; message: string },
): { max_ttl_ms: number; default_ttl_ms: number } {
  if (cap !== undefined && o.max_ttl > cap.ms) ctx.addIssue({ code: 'custom', path: ['max_ttl'], message: cap.message });
  const def = o.default_ttl ?? Math.min(o.max_ttl, 15 * 60_000);
  if (def <= 0 || def > o.max_ttl) ctx.addIssue({ code: 'custom', path: ['default_ttl'], message: 'must be positive and at most max_ttl' });
  return { max_ttl_ms: o.max_ttl, default_ttl_ms: def };
}
