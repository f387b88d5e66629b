// Which trust may prove which identity (docs/identity.md, "Binding"). A trust that maps claims
// to ids through a template is a *producer*; every identity is bound to the producer(s) allowed
// to prove it, and the overlap of two producers' templates is decided at config load.
// Credentials Portcullis issued for a named identity (API keys, SVIDs from `bundle: portcullis`,
// the bootstrap secret) are not producers: the credential itself names its identity.
import type { IdentityKind, VerifiedProof } from './types.ts';
import { IDENTITY_KINDS } from './types.ts';
import { ambiguousSeparator, templateCanProduce, templatePrefix, templatesOverlap } from './template.ts';
import { fail } from './reasons.ts';
import { trustKind } from './trusts/registry.ts';

/** The part of a trust's configuration that says which ids it can produce. */
export interface ProducerTrust {
  name: string;
  kind: string;
  identity?: string;
  identity_kind?: IdentityKind;
  identity_claim?: 'email' | 'sub';
  trust_domain?: string;
  bundle?: string;
  shared_namespace?: boolean;
}

export interface Producer {
  trust: string;
  template: string;
  kind: IdentityKind | undefined;
  shared: boolean;
  /** Narrows what a placeholder value may be (e.g. an e-mail address). */
  value?: (v: string, last: boolean) => boolean;
}

/** The template behind a trust (its kind's plug-in says); `undefined` for a trust whose credentials name their identity. */
export function producerOf(t: ProducerTrust, ownBundle = 'portcullis'): Producer | undefined {
  return trustKind(t.kind)?.producer(t, ownBundle);
}

/** Ids no federated proof may ever yield: the bootstrap administrator and Portcullis' own actor namespaces. */
const RESERVED_EXACT: readonly string[] = ['user:admin'];
const RESERVED_PREFIXES: readonly string[] = ['system:', 'trust:', 'portcullis:'];

/** Case-insensitive: `user:ADMIN` or `System:x` from an issuer is a look-alike of a reserved id, refused the same way. */
export function isReservedId(id: string): boolean {
  const lower = id.toLowerCase();
  return RESERVED_EXACT.includes(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p));
}

/** The kind an id's prefix names (`workload:…` → workload), or undefined for other prefixes and SPIFFE IDs. */
export function kindOfId(id: string): IdentityKind | undefined {
  const i = id.indexOf(':');
  const prefix = i > 0 ? id.slice(0, i) : '';
  return (IDENTITY_KINDS as readonly string[]).includes(prefix) ? (prefix as IdentityKind) : undefined;
}

/**
 * Checks at configuration load: a template starts with `<identity_kind>:` (or is a SPIFFE ID),
 * never names a reserved id, and no two producers overlap unless both declare `shared_namespace`.
 * Returns problems as [trust name, message] so the loader can name the field.
 */
export function producerProblems(producers: readonly Producer[]): { trust: string; field: string; message: string }[] {
  const out: { trust: string; field: string; message: string }[] = [];
  for (const p of producers) {
    const prefix = templatePrefix(p.template).toLowerCase();
    const sep = ambiguousSeparator(p.template);
    if (sep !== undefined) out.push({ trust: p.trust, field: 'identity', message: `template "${p.template}": placeholders separated by "${sep}" could not be told apart (two subjects would share an id); separate them with "/" or ":"` });
    if (RESERVED_PREFIXES.some((r) => prefix.startsWith(r) || r.startsWith(prefix))) {
      out.push({ trust: p.trust, field: 'identity', message: `template "${p.template}" can yield a reserved id (${RESERVED_PREFIXES.join(', ')})` });
    }
    if (p.kind !== undefined && !prefix.startsWith(`${p.kind}:`)) {
      out.push({ trust: p.trust, field: 'identity', message: `template "${p.template}" must start with "${p.kind}:" (identity_kind ${p.kind}): a trust never yields an id of another kind` });
    }
  }
  for (let i = 0; i < producers.length; i++) {
    for (let j = i + 1; j < producers.length; j++) {
      const a = producers[i]!;
      const b = producers[j]!;
      if (!templatesOverlap(a.template, b.template) || (a.shared && b.shared)) continue;
      const missing = [a, b].filter((p) => !p.shared).map((p) => p.trust).join(' and ');
      out.push({
        trust: (a.shared ? b : a).trust,
        field: 'shared_namespace',
        message: `identity templates of trusts ${a.trust} ("${a.template}") and ${b.trust} ("${b.template}") overlap: one issuer could log in as the other's identities. Give them disjoint prefixes, or set shared_namespace: true on both (missing on ${missing}); identities stay bound to the trust that registered them`,
      });
    }
  }
  return out;
}

/** The producers whose template can yield `id`. */
export function producersOf(id: string, producers: readonly Producer[]): Producer[] {
  // No trust ever produces a reserved id, so none can be bound to one (declared, bound or implied).
  if (isReservedId(id)) return [];
  return producers.filter((p) => templateCanProduce(p.template, id, p.value));
}

/**
 * The trusts a declared identity is bound to when its declaration names none: the one producer
 * that can yield its id, or none (then only Portcullis-issued credentials prove it). Two is an
 * error the caller reports naming both.
 */
export function implicitBinding(id: string, producers: readonly Producer[]): { trusts: string[] } | { ambiguous: string[] } {
  const can = producersOf(id, producers).map((p) => p.trust);
  return can.length > 1 ? { ambiguous: can } : { trusts: can };
}

/** The checks every federated proof passes before its identity is looked up. */
export function checkProducedId(v: VerifiedProof): void {
  if (isReservedId(v.identityId)) throw fail('reserved_identity', `trust ${v.facts.trust} may not yield the reserved identity ${v.identityId}`);
  const k = kindOfId(v.identityId);
  if (k !== undefined && k !== v.kind) throw fail('identity_kind_mismatch', `trust ${v.facts.trust} yields ${v.kind} identities, not ${v.identityId}`);
}
