// Turns policy source files into individually identified policies and validates them against the
// schema in strict mode. Nothing here activates anything: that is the policy store's job.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Entity, PolicySource } from './engine/types.ts';
import { PortcullisError } from '../common/errors.ts';
import { BUILTIN_SCHEMA, SYSTEM_POLICIES } from './schema.ts';

/** A policy file as stored: where it came from and its text. */
export interface PolicyFile {
  /** e.g. `demo.cedar`; unique within a version. */
  name: string;
  origin: 'config' | 'api';
  text: string;
}

export interface Diagnostic {
  policy?: string;
  file?: string;
  message: string;
  help?: string;
}

/** Thrown when policies do not parse or do not validate; carries Cedar's own diagnostics. */
export class PolicyRejected extends PortcullisError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    super('policy_invalid', 400, `policy rejected: ${diagnostics.map((d) => d.message).join('; ')}`, { diagnostics });
    this.diagnostics = diagnostics;
  }
}

const MAX_POLICY_BYTES = 1 << 20;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ID_ANNOTATION = /@id\(\s*"((?:[^"\\]|\\.)*)"\s*\)/;

export function schemaText(extension?: string): string {
  return extension ? `${BUILTIN_SCHEMA}\n${extension}` : BUILTIN_SCHEMA;
}

/** Splits files into policies. Ids come from `@id("…")` or are `<file>#<index>`. */
export function splitPolicies(files: readonly PolicyFile[]): PolicySource[] {
  const out: PolicySource[] = [];
  const seen = new Set<string>(SYSTEM_POLICIES.map((p) => p.id));
  const diagnostics: Diagnostic[] = [];
  for (const f of files) {
    if (!NAME_RE.test(f.name)) {
      diagnostics.push({ file: f.name, message: `file name "${f.name}" must match ${NAME_RE.source}` });
      continue;
    }
    if (Buffer.byteLength(f.text) > MAX_POLICY_BYTES) {
      diagnostics.push({ file: f.name, message: `${f.name} is larger than 1 MiB` });
      continue;
    }
    const parts = cedar.policySetTextToParts(f.text);
    if (parts.type !== 'success') {
      for (const e of parts.errors) diagnostics.push({ file: f.name, message: `${f.name}: ${e.message}`, help: e.help ?? undefined });
      continue;
    }
    if (parts.policy_templates.length > 0) {
      diagnostics.push({ file: f.name, message: `${f.name}: templates are not supported yet` });
    }
    parts.policies.forEach((text, i) => {
      const id = ID_ANNOTATION.exec(text)?.[1] ?? `${f.name}#${i}`;
      if (seen.has(id)) diagnostics.push({ file: f.name, policy: id, message: `${f.name}: duplicate policy id "${id}"` });
      seen.add(id);
      out.push({ id, text });
    });
  }
  if (diagnostics.length > 0) throw new PolicyRejected(diagnostics);
  return out;
}

/** Strict validation against the schema; throws PolicyRejected with Cedar's diagnostics. */
function validatePolicies(policies: readonly PolicySource[], schemaExtension?: string): void {
  const staticPolicies: Record<string, string> = {};
  for (const p of policies) staticPolicies[p.id] = p.text;
  const r = cedar.validate({
    schema: schemaText(schemaExtension),
    policies: { staticPolicies },
    validationSettings: { mode: 'strict' },
  });
  if (r.type !== 'success') {
    throw new PolicyRejected(r.errors.map((e) => ({ message: e.message, help: e.help ?? undefined })));
  }
  if (r.validationErrors.length > 0) {
    throw new PolicyRejected(
      r.validationErrors.map((e) => ({ policy: e.policyId, message: `${e.policyId}: ${e.error.message}`, help: e.error.help ?? undefined })),
    );
  }
}

/** The full active set: system policies first, then the deployment's. */
export function compilePolicySet(files: readonly PolicyFile[], schemaExtension?: string): PolicySource[] {
  const all = [...SYSTEM_POLICIES, ...splitPolicies(files)];
  validatePolicies(all, schemaExtension);
  return all;
}

/**
 * Action entities with their groups (`db.select` in `db.read`), derived from the schema. Cedar
 * resolves `action in Action::"db.read"` through entities, so the engine's store must hold them.
 */
export function actionEntities(schemaExtension?: string): Entity[] {
  const r = cedar.schemaToJson(schemaText(schemaExtension));
  if (r.type !== 'success') throw new PolicyRejected(r.errors.map((e) => ({ message: `schema: ${e.message}` })));
  const out: Entity[] = [];
  for (const [ns, def] of Object.entries(r.json)) {
    const type = ns === '' ? 'Action' : `${ns}::Action`;
    for (const [id, action] of Object.entries(def.actions)) {
      out.push({
        uid: { type, id },
        attrs: {},
        parents: (action.memberOf ?? []).map((m) => ({ type: m.type ?? type, id: m.id })),
      });
    }
  }
  return out;
}

/** The actions the schema lets apply to a principal type and a resource type (AuthZEN action search), sorted. */
export function actionsApplying(principalType: string, resourceType: string, schemaExtension?: string): string[] {
  const r = cedar.schemaToJson(schemaText(schemaExtension));
  if (r.type !== 'success') throw new PolicyRejected(r.errors.map((e) => ({ message: `schema: ${e.message}` })));
  const out: string[] = [];
  for (const [ns, def] of Object.entries(r.json)) {
    const q = (t: string) => (ns === '' || t.includes('::') ? t : `${ns}::${t}`);
    for (const [id, action] of Object.entries(def.actions)) {
      const a = action.appliesTo;
      if (!a) continue;
      if ((a.principalTypes ?? []).map(q).includes(principalType) && (a.resourceTypes ?? []).map(q).includes(resourceType)) out.push(ns === '' ? id : `${ns}::${id}`);
    }
  }
  return out.sort();
}
