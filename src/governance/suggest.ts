// Suggested policy: a narrowed Cedar policy set for an identity or a team that keeps every observed
// allow and drops what went unused. The permits that gave the subject its effective permissions
// exclude it (`unless { principal == X }`, or are dropped when they named only X); a new file
// grants exactly the observed (action, resource) pairs under each determining permit's own
// conditions, so every recorded allow replays as an allow (docs/governance.md "Suggested policy").
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { EntityUid } from '../policy/engine/types.ts';
import type { PolicyFile } from '../policy/policy-set.ts';
import { compilePolicySet, splitPolicies } from '../policy/policy-set.ts';
import type { EffectivePermissions } from './permissions.ts';
import { pairKey, type ObservedPair } from './usage.ts';

export interface SuggestInput {
  /** The active version's files. */
  files: readonly PolicyFile[];
  /** `principal == uid` for an identity, `principal in Team::"t"` (or Role) for a group. */
  subject: { uid: EntityUid; group: boolean };
  /** Each member's effective permissions and observed pairs (one member for an identity). */
  members: readonly { permissions: EffectivePermissions; observed: ReadonlyMap<string, ObservedPair> }[];
  schemaExtension?: string;
}

export interface Suggestion {
  /** The candidate set: every file, the changed ones rewritten, plus the new one. */
  files: PolicyFile[];
  /** Names of the files that changed or are new. */
  changed: string[];
  /** Unified diff from the active files to the candidate. */
  diff: string;
  /** Observed pairs granted by the new file. */
  kept: number;
  /** Effective pairs no longer granted to the subject (unused in the window). */
  removed: { action: string; resource: EntityUid }[];
  /** Permits narrowed (excluding the subject) or dropped (they named only the subject). */
  narrowed: string[];
  dropped: string[];
}

const ent = (u: EntityUid): string => `${u.type}::${JSON.stringify(u.id)}`;

/** Builds and validates (strict, against the schema) the narrowed set; throws PolicyRejected if Cedar refuses it. */
export function suggestPolicy(input: SuggestInput): Suggestion {
  const { subject } = input;
  // The permits that made the subject's effective permissions (system policies cannot be edited).
  const relevant = new Set<string>();
  for (const m of input.members) for (const p of m.permissions.permissions) for (const c of p.permits) if (!c.policy.startsWith('system:')) relevant.add(c.policy);
  // Observed pairs per determining permit and resource: the grants of the new file.
  const grants = new Map<string, { policy: string; resource: EntityUid; actions: Set<string> }>();
  let kept = 0;
  const keptKeys = new Set<string>();
  for (const m of input.members) {
    const effective = new Map(m.permissions.permissions.map((p) => [pairKey(p.action, p.resource), p]));
    for (const [k, o] of m.observed) {
      let via = [...o.policies].filter((id) => relevant.has(id));
      if (via.length === 0) via = (effective.get(k)?.permits ?? []).map((c) => c.policy).filter((id) => relevant.has(id));
      if (via.length === 0) continue; // allowed by something this suggestion leaves as it is
      if (!keptKeys.has(k)) {
        keptKeys.add(k);
        kept++;
      }
      for (const policy of via) {
        const g = `${policy}\u0000${ent(o.resource)}`;
        let e = grants.get(g);
        if (e === undefined) grants.set(g, (e = { policy, resource: o.resource, actions: new Set() }));
        e.actions.add(o.action);
      }
    }
  }
  const removed: Suggestion['removed'] = [];
  const seenRemoved = new Set<string>();
  for (const m of input.members) {
    for (const p of m.permissions.permissions) {
      const k = pairKey(p.action, p.resource);
      if (keptKeys.has(k) || seenRemoved.has(k) || !p.permits.some((c) => relevant.has(c.policy))) continue;
      seenRemoved.add(k);
      removed.push({ action: p.action, resource: p.resource });
    }
  }
  // Rewrite the files: exclude the subject from each relevant permit, or drop it when it names only the subject.
  const principalScope = subject.group ? { op: 'in', entity: { type: subject.uid.type, id: subject.uid.id } } : { op: '==', entity: { type: subject.uid.type, id: subject.uid.id } };
  const jsonOf = new Map<string, PolicyJsonLike>();
  const narrowed: string[] = [];
  const dropped: string[] = [];
  const changed: string[] = [];
  const files: PolicyFile[] = input.files.map((f) => {
    // In the order they stand in the file (splitPolicies need not keep it): each is found after the last.
    const policies = splitPolicies([f])
      .map((p) => ({ p, at: f.text.indexOf(p.text) }))
      .sort((a, b) => a.at - b.at)
      .map(({ p }) => p);
    let text = f.text;
    let from = 0;
    let edited = false;
    for (const p of policies) {
      const at = text.indexOf(p.text, from);
      const json = toJson(p.text);
      jsonOf.set(p.id, json);
      if (at < 0 || !relevant.has(p.id)) {
        if (at >= 0) from = at + p.text.length;
        continue;
      }
      edited = true;
      let replacement: string;
      if (sameScope(json.principal, principalScope)) {
        dropped.push(p.id);
        replacement = `// ${p.id}: narrowed to the observed use in the suggested file`;
      } else {
        narrowed.push(p.id);
        replacement = `${p.text.replace(/;\s*$/, '')}\nunless { principal ${subject.group ? 'in' : '=='} ${ent(subject.uid)} };`;
      }
      text = text.slice(0, at) + replacement + text.slice(at + p.text.length);
      from = at + replacement.length;
    }
    if (edited) changed.push(f.name);
    return edited ? { ...f, origin: 'api' as const, text } : f;
  });
  const name = `suggested-${subject.uid.id.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 80)}.cedar`;
  const out: string[] = [`// Suggested by portcullis policies suggest for ${ent(subject.uid)}: the (action, resource) pairs observed allowed,`, '// each under the conditions of the permit that allowed it.'];
  for (const g of [...grants.values()].sort((a, b) => (a.policy + ent(a.resource) < b.policy + ent(b.resource) ? -1 : 1))) {
    const source = jsonOf.get(g.policy);
    if (source === undefined) continue;
    const actions = [...g.actions].sort();
    const json = {
      effect: 'permit',
      principal: principalScope,
      action: actions.length === 1 ? { op: '==', entity: { type: 'Action', id: actions[0] } } : { op: 'in', entities: actions.map((id) => ({ type: 'Action', id })) },
      resource: { op: '==', entity: { type: g.resource.type, id: g.resource.id } },
      conditions: source.conditions,
    };
    const r = cedar.policyToText(json as cedar.PolicyJson);
    if (r.type !== 'success') continue;
    out.push(`// from ${g.policy}`, r.text);
  }
  const newFile: PolicyFile = { name: uniqueName(name, input.files), origin: 'api', text: `${out.join('\n')}\n` };
  files.push(newFile);
  changed.push(newFile.name);
  compilePolicySet(files, input.schemaExtension); // strict validation against the schema
  const diff = [...input.files.map((f) => [f, files.find((x) => x.name === f.name)!] as const).filter(([a, b]) => a.text !== b.text), [undefined, newFile] as const]
    .map(([a, b]) => unifiedDiff(a?.name ?? '/dev/null', b.name, a?.text ?? '', b.text))
    .join('');
  return { files, changed, diff, kept, removed, narrowed, dropped };
}

interface PolicyJsonLike {
  principal: { op: string; entity?: EntityUid };
  conditions: unknown[];
}

function toJson(text: string): PolicyJsonLike {
  const r = cedar.policyToJson(text);
  if (r.type !== 'success') throw new Error(`policy does not parse: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.json as unknown as PolicyJsonLike;
}

function sameScope(a: PolicyJsonLike['principal'], b: { op: string; entity: EntityUid }): boolean {
  return a.op === b.op && a.entity?.type === b.entity.type && a.entity.id === b.entity.id;
}

function uniqueName(name: string, files: readonly PolicyFile[]): string {
  let n = name;
  for (let i = 2; files.some((f) => f.name === n); i++) n = name.replace(/\.cedar$/, `-${i}.cedar`);
  return n;
}

/** A unified diff of two texts (line LCS; the whole file as one hunk when they differ). */
export function unifiedDiff(aName: string, bName: string, a: string, b: string): string {
  const x = a === '' ? [] : a.replace(/\n$/, '').split('\n');
  const y = b === '' ? [] : b.replace(/\n$/, '').split('\n');
  const n = x.length;
  const m = y.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = x[i] === y[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const lines: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      lines.push(` ${x[i]}`);
      i++;
      j++;
    } else if (j < m && (i >= n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) lines.push(`+${y[j++]}`);
    else lines.push(`-${x[i++]}`);
  }
  return `--- ${aName === '/dev/null' ? aName : `a/${aName}`}\n+++ b/${bName}\n@@ -${n === 0 ? 0 : 1},${n} +${m === 0 ? 0 : 1},${m} @@\n${lines.join('\n')}\n`;
}
