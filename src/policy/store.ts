// Numbered policy versions. Every activation is a new version; the newest is the active one.
// Storage is the policy domain's port (ports.ts); this adds the digest that names a set of files.
import { createHash } from 'node:crypto';
import type { PolicyFile } from './policy-set.ts';
import type { PolicyVersion, PolicyVersionRepository, PolicyVersionSummary } from './ports.ts';

export type { PolicyVersion } from './ports.ts';

export function digestFiles(files: readonly PolicyFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) h.update(`${f.origin}\0${f.name}\0${f.text}\0`);
  return h.digest('hex');
}

export class PolicyStore {
  readonly #versions: PolicyVersionRepository;

  constructor(versions: PolicyVersionRepository) {
    this.#versions = versions;
  }

  active(): Promise<PolicyVersion | undefined> {
    return this.#versions.newest();
  }

  get(version: number): Promise<PolicyVersion | undefined> {
    return this.#versions.get(version);
  }

  list(): Promise<PolicyVersionSummary[]> {
    return this.#versions.list();
  }

  append(files: readonly PolicyFile[], actor: string, reason: string, at: Date): Promise<PolicyVersion> {
    return this.#versions.append({ created_at: at.toISOString(), actor, reason, digest: digestFiles(files), files: [...files] });
  }
}
