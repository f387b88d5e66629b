// Creates one configuration's domain services over the opened store and wires them to each other:
// the credential and access services ask for decisions through the decide adapters, and ending a
// grant ends the leases issued under it. The order is the order tables and keys are first made in.
import { outboundFetch } from '../common/outbound.ts';
import type { PortcullisConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import { Metrics } from '../common/metrics.ts';
import { AuditLog } from '../audit/log.ts';
import { AUDIT_STREAMS } from '../audit/types.ts';
import { SessionService } from '../identity/sessions.ts';
import { ApiKeyService } from '../identity/apikeys.ts';
import { createEngine } from '../policy/engine/select.ts';
import { DecisionPoint } from '../policy/decision-point.ts';
import { resourceEntity } from '../policy/entities.ts';
import { PolicyStore } from '../policy/store.ts';
import { createCredentialService } from '../credentials/index.ts';
import { createAccessService } from '../access/index.ts';
import type { Opened } from './open.ts';
import { sshHostCa, sshKrlPath, sshUserCa, tokenSigner } from './open.ts';
import { createTrusts } from './trusts.ts';
import { LOGIN_STATE_SECRET } from '../identity/login-state.ts';
import { withGrants } from './authorization.ts';
import type { GrantsFor } from './authorization.ts';
import { accessDecider, accessWouldDecider, credentialDecider } from './credential-decisions.ts';
import { SignalFacts } from '../signals/facts.ts';
import { AgentService } from '../agents/service.ts';

/** A lease younger than this may still be in the making on another replica: reconcile never calls it missing at the target. */
const IN_FLIGHT_GRACE_MS = 120_000;

export interface ServiceOptions {
  clock: Clock;
  /** `iss` of the broker's session and access tokens. */
  issuer: string;
  env: Record<string, string | undefined>;
  log: (msg: string) => void;
  /** "Type::id" → boundary of the declared resources (filled when declared state is loaded). */
  resourceBoundaries: ReadonlyMap<string, string>;
}

export function createServices(config: PortcullisConfig, opened: Opened, o: ServiceOptions) {
  const { keyring, spiffeCa, identities } = opened;
  const { clock, issuer } = o;
  const metrics = new Metrics({ collectDefaults: true, engine: config.engine });
  // One outbound policy for every URL the broker calls: no private destinations but those listed.
  const outbound = outboundFetch({ allowPrivate: config.outbound.allow_private, self: [config.listen] });
  const audit = new AuditLog(opened.store.audit, {
    clock,
    signer: () => keyring.checkpointSigner(),
    // One signer at a time links the checkpoints: the replica that leads the cluster jobs.
    signs: () => opened.store.leader.leading,
    ...(opened.store.kind === 'postgres' && { followPollMs: 500 }),
    checkpointEvery: config.audit.checkpoint_every,
    checkpointIntervalMs: config.audit.checkpoint_interval_ms,
    ...(config.audit.witness && { witness: { ...config.audit.witness, fetch: outbound, onError: (where, err) => o.log(`audit witness (${where}) failed: ${(err as Error).message}`) } }),
    onBatch: (events, seconds, ok) => {
      metrics.auditBatchSeconds.observe({ result: ok ? 'ok' : 'failed' }, seconds);
      metrics.auditEvents.inc({ result: ok ? 'ok' : 'failed' }, events);
    },
  });
  opened.store.leader.onChange(() => audit.forgetSigned());
  const policyStore = new PolicyStore(opened.store.policy.versions, { changes: opened.store.changes, unitOfWork: opened.store });
  const engine = createEngine(config.engine);
  const declaredResources = new Map(config.resources.map((r) => [`${r.type}::${r.id}`, resourceEntity(r)]));
  // `context.signals` of every decision: the facts Shared Signals set (loaded in Broker.open).
  const signalFacts = new SignalFacts({ repository: opened.store.signals.facts, changes: opened.store.changes, unitOfWork: opened.store });
  const decisions = new DecisionPoint({
    engine,
    store: policyStore,
    audit,
    clock,
    ...(config.schema_extension !== undefined && { schemaExtension: config.schema_extension }),
    bridges: config.bridges,
    failClosed: config.audit.fail_closed,
    resourceBoundary: (uid) => o.resourceBoundaries.get(`${uid.type}::${uid.id}`),
    resourceEntity: (uid) => declaredResources.get(`${uid.type}::${uid.id}`),
    signals: (id) => signalFacts.of(id),
    onAuditFailure: (err) => o.log(`audit write failed (fail_closed is off): ${(err as Error).message}`),
  });
  const sessions = SessionService.open({ repository: opened.store.identity.sessions, keyring, issuer, ttlMs: config.session.ttl_ms, clock, changes: opened.store.changes, unitOfWork: opened.store });
  const apikeys = ApiKeyService.open({
    repository: opened.store.identity.apiKeys,
    unitOfWork: opened.store,
    keyring,
    clock,
    maxTtlMs: config.apikeys.max_ttl_ms,
    defaultRotationMs: config.apikeys.rotation_ms,
  });
  // The SVID trust checks leases at login time, after `credentials` below exists.
  const { authenticator, humanTrusts } = createTrusts(config.trusts, {
    clock,
    issuer,
    apikeys,
    spiffeCa,
    credentials: () => credentials,
    fetch: outbound,
    replay: opened.store.identity.replay,
    loginState: opened.store.identity.loginState,
    loginStateKey: keyring.secret(LOGIN_STATE_SECRET),
  });
  const sshCa = sshUserCa(keyring);
  const sshHost = sshHostCa(keyring);
  // Read at decision time, after `access` below exists.
  const grantsFor: GrantsFor = (identity, resource, action) => withGrants(access, clock.now(), identity, resource, action);
  const deciders = { identities, decisions, metrics, grantsFor };
  // Replicas of a shared store: jobs run on the leader, and other replicas' fresh intents are left alone.
  const leader = opened.store.leader;
  const cluster = opened.store.kind === 'postgres' ? { leads: () => leader.leading, inFlightGraceMs: IN_FLIGHT_GRACE_MS, intents: leader } : undefined;
  const credentials = createCredentialService({
    leases: opened.store.credentials.leases,
    observe: {
      issued: (kind, target, result) => metrics.issuance.inc({ kind, target, result }),
      revoked: (kind, result, seconds) => {
        metrics.revocations.inc({ kind, result });
        if (result !== 'revoke_failed') metrics.revocationSeconds.observe({ kind }, seconds);
      },
    },
    ...(cluster && { cluster }),
    clock,
    audit,
    decide: credentialDecider(deciders),
    targets: config.targets,
    env: o.env,
    signer: tokenSigner(keyring),
    issuerUrl: issuer,
    // RevokedKeys for sshd: revoking an SSH lease refuses new logins with its certificate at once.
    ssh: { ca: sshCa, krlPath: sshKrlPath(config.data_dir), hostCa: sshHost },
    spiffe: Object.fromEntries([...spiffeCa.authorities()].map(([td, a]) => [td, { root: a.root, intermediate: a.intermediate }])),
    resolvers: {
      identitiesOfOwner: (owner) => identities.list({ owner }).map((i) => i.id),
      identitiesOfTrust: (trust) => identities.list().filter((i) => i.trust === trust).map((i) => i.id),
    },
  });
  const access = createAccessService({
    store: opened.store.access,
    unitOfWork: opened.store,
    changes: opened.store.changes,
    leads: () => leader.leading,
    clock,
    audit,
    decide: accessDecider(deciders),
    wouldDecide: accessWouldDecider(deciders),
    // Ending a grant (time, revocation, logout) ends the credentials issued under it.
    revokeLeases: ({ grantId }, opts) => credentials.revoke({ grant: grantId }, opts),
    config: config.access,
    resourceInfo: (uid) => config.resources.find((r) => r.type === uid.type && r.id === uid.id),
    resourceChildren: (uid) => config.resources.filter((r) => r.parents.some((p) => p.type === uid.type && p.id === uid.id)),
    credentialResource: (name) => {
      const t = credentials.targets().find((x) => x.name === name);
      return t && { type: t.resourceType, id: t.name };
    },
    accountable: (id) => identities.accountableHumans(id),
    isActive: (id) => identities.get(id)?.status === 'active',
    teamsOf: (id) => (identities.get(id)?.parents ?? []).filter((p) => p.type === 'Team').map((p) => p.id),
    onError: (err) => o.log(`access: ${(err as Error).message}`),
    onDelivery: (result) => metrics.webhookDeliveries.inc({ result }),
    fetch: outbound,
  });
  // Agent profiles and assignments (docs/agents.md).
  const agents = new AgentService({ store: opened.store, clock });
  metrics.observe({
    activeLeases: async () => {
      const byKind: Record<string, number> = {};
      for (const l of await credentials.leases.list({ status: 'active' }, 1_000_000)) byKind[l.kind] = (byKind[l.kind] ?? 0) + 1;
      return byKind;
    },
    activeGrants: async () => (await access.grants.list({ activeAt: clock.now() }, 1_000_000)).length,
    auditBacklog: () => audit.backlog,
    checkpointAges: () => {
      const now = clock.now();
      const ages: Record<string, number> = {};
      for (const stream of AUDIT_STREAMS) {
        const at = audit.lastCheckpointAt(stream);
        if (at !== undefined) ages[stream] = Math.max(0, (now - at) / 1000);
      }
      return ages;
    },
  });
  return { metrics, audit, identities, policyStore, decisions, sessions, apikeys, authenticator, humanTrusts, sshCa, sshHostCa: sshHost, credentials, access, grantsFor, signalFacts, outbound, agents };
}
