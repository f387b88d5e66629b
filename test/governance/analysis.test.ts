// Governance analysis over real HTTP with recorded history (docs/governance.md): effective
// permissions agree with the server's own engine in both directions (property-checked over sampled
// request contexts), observed use and over-privilege, a suggested policy that keeps every observed
// allow (proved by replay) and removes the unused, and replay flips reported exactly.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../integration/harness.ts';
import type { Json } from '../json.ts';
import type { AuthzRequest, CedarValue, Entity } from '../../src/policy/engine/types.ts';
import { CompiledEngine } from '../../src/policy/engine/compiled/index.ts';
import { principalEntity, resourceEntity, type PrincipalFacts } from '../../src/policy/entities.ts';
import { actionEntities, actionsApplying, compilePolicySet } from '../../src/policy/policy-set.ts';
import { PermissionModel } from '../../src/governance/permissions.ts';
import { Replay } from '../../src/governance/replay.ts';
import type { AuditRecord } from '../../src/audit/types.ts';

const API = 'workload:github/acme/api';
const CLI = join(import.meta.dirname, '../../bin/portcullis.js');

const EXTRA_POLICIES = `
@id("api-secret-with-ticket-mfa")
permit (principal == Workload::"${API}", action == Action::"secret.read", resource == Secret::"api-token")
when { context.purpose has ticket && context.authn.mfa };

@id("dev-hosts-weekdays")
permit (principal, action in [Action::"ssh.login", Action::"ssh.shell"], resource is Host)
when { resource.environment == "dev" && (context.request.weekday != "sun" || context.grants.contains("weekend")) };

@id("no-night-shell")
forbid (principal, action == Action::"ssh.shell", resource)
when { context.request.hour < 6 };

@id("main-branch-deploys")
permit (principal, action == Action::"api.call", resource == Api::"deploy")
when { principal.hasTag("ref") && principal.getTag("ref") == "refs/heads/main" };
`;

const RESOURCES = `  - { type: Secret, id: api-token, boundary: application, environment: prod }
  - { type: Host, id: web-1, boundary: application, environment: dev }
  - { type: Host, id: db-1, boundary: application, environment: prod }
  - { type: Api, id: deploy, boundary: application, environment: prod }`;

const HOUR = 3_600_000;

/** The CLI as a child process (asynchronous: the server answers from this process). */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
const enc = encodeURIComponent;

/** The context the decision point builds, for sampled request facts. */
function context(o: { reason?: boolean; ticket?: boolean; at: Date; mfa: boolean; method: string; grants: string[] }): Record<string, CedarValue> {
  const purpose: Record<string, CedarValue> = {};
  if (o.reason) purpose.reason = 'r';
  if (o.ticket) purpose.ticket = 'T-1';
  return {
    authn: { method: o.method, trust: 'ci', mfa: o.mfa, assurance: 'high', authAgeSeconds: 10 },
    request: {
      time: { __extn: { fn: 'datetime', arg: o.at.toISOString().replace(/\.\d{3}Z$/, 'Z') } },
      hour: o.at.getUTCHours(),
      weekday: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][o.at.getUTCDay()]!,
      sourceIp: { __extn: { fn: 'ip', arg: '10.1.2.3' } },
    },
    purpose,
    grants: o.grants,
    breakGlass: false,
    delegation: { depth: 0, actors: [] },
    bridge: false,
  };
}

/** A grid of request facts: purpose, time (weekday/sunday, day/night), mfa, authn method, grants. */
function contexts(): Record<string, CedarValue>[] {
  const out: Record<string, CedarValue>[] = [];
  for (const [reason, ticket] of [[false, false], [true, false], [false, true], [true, true]] as const)
    for (const at of ['2026-03-02T10:00:00Z', '2026-03-02T03:00:00Z', '2026-03-01T12:00:00Z', '2026-03-02T23:00:00Z'])
      for (const mfa of [false, true])
        for (const method of ['oidc', 'api-key'])
          for (const grants of [[], ['weekend']]) out.push(context({ reason, ticket, at: new Date(at), mfa, method, grants }));
  return out;
}

const CLAIMS: Record<string, string>[] = [{}, { repository: 'acme/api', ref: 'refs/heads/main' }, { repository: 'acme/api', ref: 'refs/heads/dev' }];

describe('governance analysis over HTTP', () => {
  let h: Harness;
  let admin: string;
  let api: string;
  const made = { selectAllow: 0, insertAllow: 0, insertDeny: 0 };

  before(async () => {
    h = await startHarness('', {}, Date.parse('2026-03-02T10:00:00Z'), { policies: EXTRA_POLICIES, resources: RESOURCES });
    api = await h.loginCi();
    const decide = async (action: string, type: string, id: string, purpose: Record<string, string>) => {
      const r = await h.post('/v1/authorize', { action, resource: { type, id }, context: { purpose } }, api);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.decision as string;
    };
    // A week of history: reads with a reason, writes with a ticket in hours (and refused at night).
    for (let day = 0; day < 3; day++) {
      assert.equal(await decide('db.select', 'Database', 'orders', { reason: 'report' }), 'allow');
      made.selectAllow++;
      assert.equal(await decide('db.insert', 'Database', 'orders', { ticket: `T-${day}` }), 'allow');
      made.insertAllow++;
      h.clock.advance(13 * HOUR); // 23:00: outside the write hours
      api = await h.loginCi();
      assert.equal(await decide('db.insert', 'Database', 'orders', { ticket: `T-${day}n` }), 'deny');
      made.insertDeny++;
      h.clock.advance(11 * HOUR); // 10:00 the next day
      api = await h.loginCi();
    }
    admin = await h.admin();
  });
  after(() => h?.close());

  const explain = async (id: string, token = admin) => {
    const r = await h.get(`/v1/identities/${enc(id)}/permissions`, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as { permissions: { action: string; resource: { type: string; id: string }; status: string; permits: { policy: string; condition?: string; requires: string[] }[]; forbids: { policy: string; condition: string }[] }[]; pairs: number };
  };

  it('lists exactly what the engine allows: every listed pair in some context its conditions name, every allowed pair listed, conditions equivalent', async () => {
    const listing = await explain(API);
    const broker = h.running.broker;
    const engine = broker.decisions.engine;
    const facts = (await h.get(`/v1/identities/${enc(API)}`, admin)).body as unknown as PrincipalFacts;
    const byKey = new Map(listing.permissions.map((p) => [`${p.action} ${p.resource.type}::${p.resource.id}`, p]));
    assert.ok(byKey.has('db.select Database::orders') && byKey.has('db.insert Table::orders.payments'));
    assert.deepEqual(byKey.get('secret.read Secret::api-token')?.permits, [{ policy: 'api-secret-with-ticket-mfa', condition: '(context.purpose has ticket) && context.authn.mfa', requires: ['authn', 'purpose'] }]);
    assert.deepEqual(byKey.get('ssh.shell Host::web-1')?.forbids.map((f) => f.policy), ['no-night-shell']);
    assert.equal(byKey.get('ssh.login Host::db-1'), undefined, 'a prod host is not reachable through the dev-hosts permit');
    assert.equal(byKey.get('db.select Database::analytics'), undefined, 'another boundary, no bridge: the boundary guard denies whatever the request');
    // Each condition, as the listing prints it, decided by an engine of its own.
    const resources = broker.config.resources.map(resourceEntity);
    const condEngines = new Map<string, CompiledEngine>();
    const holds = (cond: string | undefined, req: AuthzRequest, entities: Entity[]): boolean => {
      if (cond === undefined) return true;
      let e = condEngines.get(cond);
      if (!e) {
        e = new CompiledEngine();
        e.loadPolicies([{ id: 'c', text: `permit (principal, action, resource) when { ${cond} };` }]);
        e.upsertEntities(actionEntities());
        e.upsertEntities(resources);
        condEngines.set(cond, e);
      }
      return e.authorize(req, entities).decision === 'allow';
    };
    const grid = contexts();
    let checked = 0;
    let allowed = 0;
    for (const r of resources) {
      await new Promise(setImmediate); // the server in this process keeps answering (and timing out idle connections) meanwhile
      for (const action of actionsApplying('Workload', r.uid.type)) {
        const listed = byKey.get(`${action} ${r.uid.type}::${r.uid.id}`);
        let some = false;
        for (const claims of CLAIMS) {
          const principal = principalEntity(facts, claims);
          // credential.issue also sees what is issued (readonly within 15 minutes, or not).
          const ctxs = action !== 'credential.issue' ? grid : grid.flatMap((c) => ['readonly', 'readwrite'].map((permission) => ({ ...c, credential: { kind: 'postgres', target: r.uid.id, permission, ttlSeconds: 600, renewal: false, revalidation: false } })));
          for (const ctx of ctxs) {
            const req: AuthzRequest = { principal: principal.uid, action: { type: 'Action', id: action }, resource: r.uid, context: ctx };
            const got = engine.authorize(req, [principal]).decision === 'allow';
            checked++;
            if (got) allowed++;
            if (!listed) {
              assert.equal(got, false, `${action} on ${r.uid.type}::${r.uid.id} is allowed by the engine but not listed`);
              continue;
            }
            const want = listed.permits.some((p) => holds(p.condition, req, [principal])) && !listed.forbids.some((f) => holds(f.condition, req, [principal]));
            assert.equal(got, want, `${action} on ${r.uid.type}::${r.uid.id}: engine ${got}, listing's conditions ${want} (${JSON.stringify(ctx)} ${JSON.stringify(claims)})`);
            if (listed.status === 'unconditional') assert.equal(got, true);
            some ||= got;
          }
        }
        if (listed) assert.ok(some, `${action} on ${r.uid.type}::${r.uid.id} is listed but no sampled context allows it`);
      }
    }
    assert.ok(allowed > 0 && checked > allowed);
  });

  it("lists a team's effective permissions as its standing members'", async () => {
    for (const id of ['workload:batch-1', 'workload:batch-2']) {
      const r = await h.post('/v1/identities', { id, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:data', parents: [{ type: 'Team', id: 'data' }] }, admin);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const g = await h.get('/v1/governance/permissions?team=data', admin);
    assert.equal(g.status, 200, JSON.stringify(g.body));
    assert.deepEqual(g.body.members, ['workload:batch-1', 'workload:batch-2']);
    const one = await explain('workload:batch-1');
    const rows = g.body.permissions as { action: string; resource: { type: string; id: string }; members: string[] }[];
    assert.deepEqual(rows.map((p) => `${p.action} ${p.resource.type}::${p.resource.id}`).sort(), one.permissions.map((p) => `${p.action} ${p.resource.type}::${p.resource.id}`).sort());
    assert.ok(rows.every((p) => p.members.length === 2));
    assert.equal((await h.get('/v1/governance/permissions?team=data', api)).status, 403);
  });

  it('refuses a caller without governance.read like an unknown identity', async () => {
    const r = await h.get(`/v1/identities/${enc(API)}/permissions`, api);
    const unknown = await h.get(`/v1/identities/${enc('workload:nobody')}/permissions`, api);
    assert.equal(r.status, 404);
    assert.equal(unknown.status, 404);
    assert.equal((await h.get(`/v1/identities/${enc('workload:nobody')}/permissions`, admin)).status, 404);
  });

  it('measures observed use: used and unused permissions, over-privilege per identity and for the estate', async () => {
    const r = await h.get('/v1/governance/usage?since=30d', admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const row = (r.body.identities as Json[]).find((i) => i.identity === API)!;
    const effective = (await explain(API)).permissions.length;
    assert.equal(row.effective, effective);
    assert.equal(row.used, 2); // db.select and db.insert on Database::orders
    assert.equal(row.unused, effective - 2);
    assert.equal(row.allows, made.selectAllow + made.insertAllow);
    assert.equal(row.over_privilege, Math.round(((effective - 2) / effective) * 10_000) / 10_000);
    assert.ok((row.unused_permissions as Json[]).some((p) => p.action === 'secret.read'));
    const estate = r.body.estate as Record<string, number>;
    assert.ok(estate.effective! >= effective && estate.used! >= 2);
    assert.equal(estate.unused, estate.effective! - estate.used!);
    const none = (await h.get('/v1/governance/usage?since=1s', admin)).body;
    assert.ok((none.nothing_used as string[]).includes(API), 'nothing used in the last second');
    assert.equal((await h.get('/v1/governance/usage', api)).status, 403);
  });

  it('suggests a narrowed set that keeps every observed allow (replay proves it) and removes the unused', async () => {
    const s = await h.get(`/v1/policies/suggestion?identity=${enc(API)}&since=30d`, admin);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const files = s.body.files as { name: string; text: string }[];
    assert.equal(s.body.kept, 2);
    assert.match(s.body.diff as string, /^\+permit/m);
    assert.ok((s.body.removed as Json[]).some((p) => p.action === 'secret.read'));
    // Replay: nothing this identity was allowed is denied, nothing denied is allowed.
    const rep = await h.post('/v1/policies/replay', { files: files.map((f) => ({ name: f.name, text: f.text })), since: '30d' }, admin);
    assert.equal(rep.status, 200, JSON.stringify(rep.body));
    assert.deepEqual(rep.body.flips, { allow_to_deny: 0, deny_to_allow: 0 });
    assert.ok((rep.body.replayed as number) >= made.selectAllow + made.insertAllow + made.insertDeny);
    assert.equal((rep.body.unreconstructable as Json).count, 0);
    // Under the suggestion, the identity may do exactly what it was observed doing.
    const broker = h.running.broker;
    const model = new PermissionModel({
      policies: compilePolicySet(files.map((f) => ({ ...f, origin: 'api' as const }))),
      resources: broker.config.resources.map(resourceEntity),
      actionEntities: actionEntities(),
      actionsApplying: (p, r) => actionsApplying(p, r),
      bridged: () => false,
    });
    const facts = (await h.get(`/v1/identities/${enc(API)}`, admin)).body as unknown as PrincipalFacts;
    const now = model.explain(facts).permissions.map((p) => `${p.action} ${p.resource.type}::${p.resource.id}`);
    assert.deepEqual(now, ['db.insert Database::orders', 'db.select Database::orders']);
    // The CLI writes the candidate; `policies replay DIR` reads it back and finds no flip.
    const dir = mkdtempSync(join(tmpdir(), 'pcx-suggest-'));
    try {
      const env = { ...process.env, PORTCULLIS_ADDR: h.url, PORTCULLIS_TOKEN: admin, PORTCULLIS_HOME: dir };
      const sug = await cli(['policies', 'suggest', API, '--since', '30d', '--out', join(dir, 'candidate'), '--json'], env);
      assert.equal(sug.status, 0, sug.stderr);
      assert.deepEqual(readdirSync(join(dir, 'candidate')).sort(), files.map((f) => f.name).sort());
      const rep2 = await cli(['policies', 'replay', join(dir, 'candidate'), '--since', '30d'], env);
      assert.equal(rep2.status, 0, rep2.stderr + rep2.stdout);
      assert.match(rep2.stdout, /0 allow→deny, 0 deny→allow/);
      const ex = await cli(['access', 'explain', API, '--resource', 'Secret::api-token', '--json'], env);
      assert.equal(ex.status, 0, ex.stderr);
      assert.deepEqual((JSON.parse(ex.stdout) as { permissions: { action: string }[] }).permissions.map((p) => p.action), ['secret.read']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports replay flips exactly, by identity and action', async () => {
    const active = (await h.get('/v1/policies', admin)).body.files as { name: string; text: string }[];
    const main = active.find((f) => f.name === 'main.cedar')!;
    // Without the write-hours permit, every recorded insert allow flips; a blanket insert permit flips every recorded insert deny.
    const noWrites = main.text.replace(/@id\("api-writes-in-hours"\)[\s\S]*?;\n/, '');
    assert.notEqual(noWrites, main.text);
    const r1 = await h.post('/v1/policies/replay', { files: [{ name: 'main.cedar', text: noWrites }], since: '30d' }, admin);
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.deepEqual(r1.body.flips, { allow_to_deny: made.insertAllow, deny_to_allow: 0 });
    assert.deepEqual(r1.body.by_identity, [{ identity: API, allow_to_deny: made.insertAllow, deny_to_allow: 0 }]);
    assert.deepEqual(r1.body.by_action, [{ action: 'db.insert', allow_to_deny: made.insertAllow, deny_to_allow: 0 }]);
    assert.deepEqual((r1.body.flipped as Json[]).map((f) => [f.action, f.resource, f.recorded, f.candidate]), Array(made.insertAllow).fill(['db.insert', 'Database::orders', 'allow', 'deny']));
    const broad = `${main.text}\n@id("any-insert")\npermit (principal, action == Action::"db.insert", resource == Database::"orders");\n`;
    const r2 = await h.post('/v1/policies/replay', { files: [{ name: 'main.cedar', text: broad }], since: '30d' }, admin);
    assert.deepEqual(r2.body.flips, { allow_to_deny: 0, deny_to_allow: made.insertDeny });
    assert.deepEqual(r2.body.by_action, [{ action: 'db.insert', allow_to_deny: 0, deny_to_allow: made.insertDeny }]);
    assert.ok((r2.body.flipped as Json[]).every((f) => (f.reasons as string[]).includes('any-insert')));
    // The window bounds what is replayed.
    const none = await h.post('/v1/policies/replay', { files: [{ name: 'main.cedar', text: noWrites }], since: '1s' }, admin);
    assert.deepEqual(none.body.flips, { allow_to_deny: 0, deny_to_allow: 0 });
    // Replay reads the authz stream and the policy: refused to the workload.
    assert.equal((await h.post('/v1/policies/replay', { files: [{ name: 'main.cedar', text: broad }] }, api)).status, 403);
    // A candidate that does not validate is a 400 naming the problem.
    const bad = await h.post('/v1/policies/replay', { files: [{ name: 'main.cedar', text: 'permit (principal, action == Action::"nope", resource);' }] }, admin);
    assert.equal(bad.status, 400);
  });

  it('push --replay prints the report and refuses to push a set that flips decisions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcx-push-'));
    try {
      const env = { ...process.env, PORTCULLIS_ADDR: h.url, PORTCULLIS_TOKEN: admin, PORTCULLIS_HOME: dir };
      writeFileSync(join(dir, 'extra.cedar'), 'forbid (principal, action == Action::"db.select", resource == Database::"orders");\n');
      const r = await cli(['policies', 'push', join(dir, 'extra.cedar'), '--reason', 'test', '--replay', '30d'], env);
      assert.equal(r.status, 1, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`${made.selectAllow} allow→deny`));
      assert.match(r.stdout, /not pushed/);
      assert.equal(readFileSync(join(dir, 'extra.cedar'), 'utf8').length > 0, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('replay of records it cannot rebuild', () => {
  it('lists decisions without a snapshot, or with redacted values, and re-decides none of them', () => {
    const engine = new CompiledEngine();
    engine.loadPolicies(compilePolicySet([]));
    engine.upsertEntities(actionEntities());
    const replay = new Replay(engine);
    const base = { stream: 'authz' as const, type: 'authz.decision', actor: 'w', decision: 'allow' as const, seq: 1, time: '2026-03-02T10:00:00.000Z', prev_hash: '', hash: '' };
    replay.add({ ...base, payload: { decision_id: 'd1', action: 'db.select', resource: 'Database::orders' } } as AuditRecord);
    const snap = { v: 1, at: '2026-03-02T10:00:00Z', p: { kind: 'workload', boundary: 'application', environment: 'prod' }, mfa: false, assurance: 'high', age: 1, claims: { ref: '[redacted]' } };
    replay.add({ ...base, payload: { decision_id: 'd2', action: 'db.select', resource: 'Database::orders', replay: snap } } as AuditRecord);
    const r = replay.report();
    assert.equal(r.replayed, 0);
    assert.deepEqual(r.unreconstructable.by_reason, { no_snapshot: 1, redacted: 1 });
    assert.deepEqual(r.unreconstructable.decisions.map((d) => d.decision_id), ['d1', 'd2']);
  });
});
