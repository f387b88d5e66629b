// Numbered policy versions. Every activation is a new version; the newest is the active one.
// Storage is the policy domain's port (ports.ts); this adds the digest that names a set of files.
import { createHash } from 'node:crypto';
import type { PolicyFile } from './policy-set.ts';
import type { PolicyVersion, PolicyVersionRepository, PolicyVersionSummary } from './ports.ts';
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';

export type { PolicyVersion } from './ports.ts';

export function digestFiles(files: readonly PolicyFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) h.update(`${f.origin}\0${f.name}\0${f.text}\0`);
  return h.digest('hex');
}

export class PolicyStore {
  readonly #versions: PolicyVersionRepository;
  readonly #shared: { changes: ChangeFeed; unitOfWork: UnitOfWork } | undefined;

  /** With `shared`, activations are announced to the other replicas and theirs reported by `onActivated`. */
  constructor(versions: PolicyVersionRepository, shared?: { changes: ChangeFeed; unitOfWork: UnitOfWork }) {
    this.#versions = versions;
    this.#shared = shared;
  }

  /** Calls `fn` when another replica activated a version (or notices may have been missed). */
  onActivated(fn: () => Promise<void>): void {
    this.#shared?.changes.subscribe('policy', fn);
    this.#shared?.changes.onResync(fn);
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
    const write = () => this.#versions.append({ created_at: at.toISOString(), actor, reason, digest: digestFiles(files), files: [...files] });
    const shared = this.#shared;
    if (!shared) return write();
    return shared.unitOfWork.transaction(async () => {
      // Replicas starting together activate the same configured files: one version, not one each.
      await shared.unitOfWork.lock('policy:activate');
      const newest = await this.#versions.newest();
      if (newest && newest.digest === digestFiles(files)) return newest;
      const v = await write();
      await shared.changes.publish('policy', String(v.version));
      return v;
    });
  }
}
