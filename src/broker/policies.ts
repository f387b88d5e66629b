// The policies' admin API: the active version, every version and one version's files (`policy.read`), and replacing
// the API-managed files (`policy.write`), each decided with Cedar before it acts.
import { InvalidInput, NotFound } from '../common/errors.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import type { PolicyStore } from '../policy/store.ts';
import type { PolicyFile } from '../policy/policy-set.ts';
import { compilePolicySet } from '../policy/policy-set.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';

export interface WritePoliciesRequest {
  files: { name: string; text: string }[];
  reason: string;
  dry_run?: boolean;
}

export interface PolicyAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  decisions: DecisionPoint;
  policyStore: PolicyStore;
  /** Leases are revalidated against each newly activated version. */
  credentials: CredentialService;
  schemaExtension: string | undefined;
}

const ACTIVE = { type: 'Policy', id: 'active' };

export class PolicyAdmin {
  readonly #d: PolicyAdminDeps;

  constructor(deps: PolicyAdminDeps) {
    this.#d = deps;
  }

  #require(c: Caller, action: 'policy.read' | 'policy.write') {
    return this.#d.authz.requireAllowed(c, action, ACTIVE);
  }

  async active(c: Caller) {
    await this.#require(c, 'policy.read');
    const v = this.#d.decisions.version;
    if (!v) throw new NotFound('active policy version');
    return {
      version: v.version,
      created_at: v.created_at,
      actor: v.actor,
      reason: v.reason,
      digest: v.digest,
      files: v.files,
      policies: this.#d.decisions.policies.map((p) => p.id),
    };
  }

  /** Every policy version. */
  async versions(c: Caller) {
    await this.#require(c, 'policy.read');
    return this.#d.policyStore.list();
  }

  /** One version with its files (`policy.read`), for history and diffs. */
  async version(c: Caller, n: number) {
    await this.#require(c, 'policy.read');
    const v = await this.#d.policyStore.get(n);
    if (!v) throw new NotFound(`policy version ${n}`);
    return v;
  }

  /** Replaces the API-managed files (config files stay); validated, versioned, audited. */
  async write(by: Caller, body: WritePoliciesRequest) {
    await this.#require(by, 'policy.write');
    const names = new Set<string>();
    for (const f of body.files) {
      if (names.has(f.name)) throw new InvalidInput(`duplicate file name ${f.name}`, 'files');
      names.add(f.name);
    }
    const configFiles = this.#d.decisions.version?.files.filter((f) => f.origin === 'config') ?? [];
    for (const f of configFiles) if (names.has(f.name)) throw new InvalidInput(`${f.name} is managed by the configuration file; choose another name`, 'files');
    const files: PolicyFile[] = [...configFiles, ...body.files.map((f) => ({ name: f.name, text: f.text, origin: 'api' as const }))];
    if (body.dry_run) {
      const policies = compilePolicySet(files, this.#d.schemaExtension);
      return { valid: true, policies: policies.map((p) => p.id) };
    }
    const { version, changed } = await this.#d.decisions.activate(files, by.identity.id, body.reason);
    // Policy changes cannot leave stale privilege behind: leases the new policy refuses are revoked.
    const revalidated = changed ? await this.#d.credentials.revalidateAll() : undefined;
    return { version: version.version, changed, digest: version.digest, ...(revalidated && { leases_revoked: revalidated }) };
  }
}
