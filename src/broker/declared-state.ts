// Loading what the configuration declares — resources, identities, policy files — into the
// registry and the decision point at open; every change it makes is audited.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { PortcullisConfig } from '../config/types.ts';
import { InvalidInput } from '../common/errors.ts';
import type { AuditLog } from '../audit/log.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import type { PolicyFile } from '../policy/policy-set.ts';
import { actionEntities } from '../policy/policy-set.ts';
import { checkResourceHierarchy, resourceEntity } from '../policy/entities.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { AgentService } from '../agents/service.ts';

export interface DeclaredStateDeps {
  config: PortcullisConfig;
  /** "Type::id" → boundary; filled here, read by the decision point. */
  resourceBoundaries: Map<string, string>;
  identities: IdentityRegistry;
  decisions: DecisionPoint;
  credentials: CredentialService;
  audit: AuditLog;
  agents: Pick<AgentService, 'profile' | 'setProfile'>;
  log: (msg: string) => void;
}

export async function loadDeclaredState(d: DeclaredStateDeps): Promise<void> {
  const { config, resourceBoundaries, identities, decisions, audit } = d;
  const engine = decisions.engine;
  checkResourceHierarchy(config.resources);
  config.access.rules.forEach((r, i) => {
    if (r.match.boundary !== undefined && !config.boundaries.includes(r.match.boundary)) {
      throw new InvalidInput(`access.rules[${i}].match.boundary: "${r.match.boundary}" is not a declared boundary`, `access.rules[${i}].match.boundary`);
    }
  });
  for (const r of config.resources) resourceBoundaries.set(`${r.type}::${r.id}`, r.boundary);
  for (const t of d.credentials.targets()) {
    if (!resourceBoundaries.has(`${t.resourceType}::${t.name}`)) {
      throw new InvalidInput(`targets: ${t.kind} target "${t.name}" needs a resource ${t.resourceType}::"${t.name}" under resources: (its boundary and environment)`, 'targets');
    }
  }
  engine.upsertEntities(config.resources.map(resourceEntity));
  engine.upsertEntities(actionEntities(config.schema_extension));
  for (const decl of config.identities) {
    const before = identities.get(decl.id);
    const { trusts, sponsor: _sponsor, ...rest } = decl;
    const after = await identities.declare({ ...rest, bound_trusts: trusts }, 'config');
    if (before !== after) {
      await audit.append({ stream: 'admin', type: before ? 'identity.updated' : 'identity.declared', actor: 'config', subject: decl.id, boundary: decl.boundary, payload: { source: 'config', owner: decl.owner ?? null, kind: decl.kind, trusts } });
    }
  }
  await declareSponsors(d);
  await decisions.loadActive();
  const files = configPolicyFiles(config.policies);
  const apiFiles = decisions.version?.files.filter((f) => f.origin === 'api') ?? [];
  const { version, changed } = await decisions.activate([...files, ...apiFiles], 'config', 'policies loaded from configuration');
  if (changed) d.log(`policy version ${version.version} activated from configuration (${files.length} file(s))`);
}

/** The sponsors config declares for its agents, on their profiles (model, provider and tools kept). */
async function declareSponsors(d: DeclaredStateDeps): Promise<void> {
  for (const [i, decl] of d.config.identities.entries()) {
    if (decl.sponsor === undefined) continue;
    const sponsor = d.identities.get(decl.sponsor);
    if (!sponsor || sponsor.kind !== 'user') throw new InvalidInput(`identities[${i}].sponsor: ${decl.sponsor} is not a user in the inventory (declare them under identities:)`, `identities[${i}].sponsor`);
    const before = await d.agents.profile(decl.id);
    if (before?.sponsor === decl.sponsor) continue;
    const profile = await d.agents.setProfile(decl.id, { sponsor: decl.sponsor, ...(before && { model: before.model, provider: before.provider, tools: before.tools }) });
    await d.audit.append({ stream: 'admin', type: 'agent.profile_set', actor: 'config', subject: decl.id, boundary: decl.boundary, payload: { source: 'config', sponsor: profile.sponsor, ...(before && { previous_sponsor: before.sponsor }) } });
  }
}

function configPolicyFiles(paths: readonly string[]): PolicyFile[] {
  return paths.map((path) => {
    try {
      return { name: basename(path), origin: 'config' as const, text: readFileSync(path, 'utf8') };
    } catch {
      throw new InvalidInput(`policies: cannot read ${path}`, 'policies');
    }
  });
}
