// The long-lived entity store in the evaluator's own form: attributes converted once, and each
// entity's transitive ancestor set maintained incrementally on upsert/remove (never per request).

import type { Entity, EntityUid } from '../types.ts';
import type { EntityData } from './compile.ts';
import { CedarEvalError } from './errors.ts';
import { EUid, fromJson, uidFromJson, type Value } from './values.ts';

const EMPTY: ReadonlySet<string> = new Set();

export function convertEntity(e: Entity): EntityData {
  if (e === null || typeof e !== 'object') throw new CedarEvalError('entity must be an object');
  const uid = uidFromJson(e.uid);
  const attrs = new Map<string, Value>();
  if (e.attrs === null || typeof e.attrs !== 'object' || Array.isArray(e.attrs)) throw new CedarEvalError(`attrs of ${uid} must be an object`);
  for (const k of Object.keys(e.attrs)) attrs.set(k, fromJson(e.attrs[k]));
  let tags: Map<string, Value> | undefined;
  if (e.tags !== undefined) {
    if (e.tags === null || typeof e.tags !== 'object' || Array.isArray(e.tags)) throw new CedarEvalError(`tags of ${uid} must be an object`);
    tags = new Map();
    for (const k of Object.keys(e.tags)) tags.set(k, fromJson(e.tags[k]));
  }
  const parents: EUid[] = [];
  if (!Array.isArray(e.parents)) throw new CedarEvalError(`parents of ${uid} must be an array`);
  const isAction = (t: string): boolean => t === 'Action' || t.endsWith('::Action');
  const action = isAction(uid.type);
  const seen = new Set<string>();
  for (const p of e.parents) {
    const u = uidFromJson(p);
    if (action && !isAction(u.type)) throw new CedarEvalError(`action \`${uid}\` has a non-action parent \`${u}\``);
    if (!seen.has(u.key)) {
      seen.add(u.key);
      parents.push(u);
    }
  }
  return { uid, attrs, tags, parents };
}

/** Reachable ancestors of `start` through `parentsOf`; `closed` short-cuts through known closures. */
export function closure(
  start: EntityData,
  lookup: (key: string) => EntityData | undefined,
  closed: (key: string) => ReadonlySet<string> | undefined,
): Set<string> {
  const out = new Set<string>();
  const stack: EntityData[] = [start];
  while (stack.length > 0) {
    const e = stack.pop()!;
    for (const p of e.parents) {
      if (out.has(p.key)) continue;
      out.add(p.key);
      const known = closed(p.key);
      if (known !== undefined) {
        for (const k of known) out.add(k);
        continue;
      }
      const pe = lookup(p.key);
      if (pe !== undefined) stack.push(pe);
    }
  }
  return out;
}

export class EntityStore {
  readonly entities = new Map<string, EntityData>();
  /** parent key → keys of entities that list it as a direct parent (parent may not exist). */
  readonly children = new Map<string, Set<string>>();
  readonly #anc = new Map<string, ReadonlySet<string>>();
  version = 0;
  /** Bumped only when the ancestry of an action entity may have changed. */
  actionVersion = 0;

  get(key: string): EntityData | undefined {
    return this.entities.get(key);
  }

  ancestors(key: string): ReadonlySet<string> | undefined {
    return this.#anc.get(key);
  }

  upsert(list: readonly Entity[]): void {
    const converted = list.map(convertEntity); // all or nothing: convert before mutating
    const previous = new Map<string, EntityData | undefined>();
    for (const e of converted) if (!previous.has(e.uid.key)) previous.set(e.uid.key, this.entities.get(e.uid.key));
    for (const e of converted) this.#put(e.uid.key, e);
    const cycle = this.#recompute([...previous.keys()]);
    if (cycle !== undefined) {
      // Cedar requires the hierarchy to be acyclic: undo the whole upsert and refuse it.
      for (const [k, old] of previous) this.#put(k, old);
      this.#recompute([...previous.keys()]);
      throw new CedarEvalError(`entity hierarchy has a cycle containing \`${this.entities.get(cycle)?.uid ?? cycle}\``);
    }
  }

  #put(key: string, e: EntityData | undefined): void {
    const old = this.entities.get(key);
    if (old !== undefined) this.#unlink(old);
    if (e === undefined) {
      this.entities.delete(key);
      this.#anc.delete(key);
      return;
    }
    this.entities.set(key, e);
    for (const p of e.parents) {
      let s = this.children.get(p.key);
      if (s === undefined) this.children.set(p.key, (s = new Set()));
      s.add(key);
    }
  }

  remove(uids: readonly EntityUid[]): void {
    const changed: string[] = [];
    for (const u of uids) {
      const key = uidFromJson(u).key;
      const old = this.entities.get(key);
      if (old === undefined) continue;
      this.#unlink(old);
      this.entities.delete(key);
      this.#anc.delete(key);
      changed.push(key);
    }
    this.#recompute(changed);
  }

  #unlink(e: EntityData): void {
    for (const p of e.parents) {
      const s = this.children.get(p.key);
      if (s !== undefined) {
        s.delete(e.uid.key);
        if (s.size === 0) this.children.delete(p.key);
      }
    }
  }

  /**
   * Recomputes the closure of every changed entity and of all its descendants. Returns the key
   * of an entity that is its own ancestor, if the hierarchy now has a cycle.
   */
  #recompute(changed: string[]): string | undefined {
    this.version++;
    if (changed.length === 0) return undefined;
    const dirty = new Set<string>();
    const stack = [...changed];
    while (stack.length > 0) {
      const k = stack.pop()!;
      if (dirty.has(k)) continue;
      dirty.add(k);
      const ch = this.children.get(k);
      if (ch !== undefined) for (const c of ch) if (!dirty.has(c)) stack.push(c);
    }
    for (const k of dirty) {
      this.#anc.delete(k);
      const type = k.slice(0, k.indexOf('\u0000'));
      if (type === 'Action' || type.endsWith('::Action')) this.actionVersion++;
    }
    const lookup = (key: string): EntityData | undefined => this.entities.get(key);
    const closed = (key: string): ReadonlySet<string> | undefined => (dirty.has(key) ? undefined : this.#anc.get(key));
    for (const k of dirty) {
      const e = this.entities.get(k);
      if (e === undefined) continue;
      const a = e.parents.length === 0 ? EMPTY : closure(e, lookup, closed);
      this.#anc.set(k, a);
    }
    for (const k of dirty) if (this.#anc.get(k)?.has(k)) return k;
    return undefined;
  }
}
