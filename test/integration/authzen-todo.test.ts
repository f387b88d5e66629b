// The AuthZEN "Todo" interop scenario against the shipped example (examples/authzen-todo/), over
// real HTTP on a real server: every rule's allow and deny (every role × action × own/other's
// todo, derived here from the scenario's rules and users, not from the example's policies), the
// batch semantics, unknown subjects and resources, an app asking outside its boundary, the
// pdp.query right and its rate limit, the search endpoints, and the authz stream attributing each
// evaluation to both the app and the subject. The PEP authenticates as the example README says:
// an API key printed by pep-token.sh, sent as `Authorization: Bearer`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { startTodoExample, TODO_EXAMPLE } from './authzen-example.ts';
import type { TodoExample } from './authzen-example.ts';
import type { TestRunning } from './broker-view.ts';
import type { Json } from '../json.ts';

const EXAMPLE = TODO_EXAMPLE;

// The scenario's users (its "PIP" data) and rules, as the scenario states them.
type User = { sid: string; email: string; roles: string[] };
const USERS: User[] = Object.entries(JSON.parse(readFileSync(join(EXAMPLE, 'users.json'), 'utf8')) as Record<string, { email: string; roles: string[] }>).map(([sid, u]) => ({ sid, email: u.email, roles: u.roles }));
const has = (u: User, ...roles: string[]) => u.roles.some((r) => roles.includes(r));
const editorOrMore = (u: User) => has(u, 'editor', 'admin', 'evil_genius');
const RULES = {
  can_read_user: () => true,
  can_read_todos: (u: User) => has(u, 'viewer', 'editor', 'admin', 'evil_genius'),
  can_create_todo: (u: User) => editorOrMore(u),
  can_update_todo: (u: User, owner: string) => (editorOrMore(u) && owner === u.email) || has(u, 'evil_genius'),
  can_delete_todo: (u: User, owner: string) => (editorOrMore(u) && owner === u.email) || has(u, 'admin'),
};
const TODO = '7240d0db-8ff0-41ec-98b2-34a096273b9f';
const subject = (u: User) => ({ type: 'user', id: u.sid });
const todo = (owner?: string) => ({ type: 'todo', id: owner ? TODO : 'todo-1', ...(owner && { properties: { ownerID: owner } }) });

/** Every case of the rules: each user × each action × each owner (and each user as a resource, by e-mail and subject id). */
function cases(): { request: { subject: object; action: { name: string }; resource: object }; expected: boolean; label: string }[] {
  const out: ReturnType<typeof cases> = [];
  for (const u of USERS) {
    for (const r of USERS) {
      for (const id of [r.email, r.sid]) out.push({ request: { subject: subject(u), action: { name: 'can_read_user' }, resource: { type: 'user', id } }, expected: RULES.can_read_user(), label: `${u.email} can_read_user ${id}` });
    }
    out.push({ request: { subject: subject(u), action: { name: 'can_read_todos' }, resource: todo() }, expected: RULES.can_read_todos(u), label: `${u.email} can_read_todos` });
    out.push({ request: { subject: subject(u), action: { name: 'can_create_todo' }, resource: todo() }, expected: RULES.can_create_todo(u), label: `${u.email} can_create_todo` });
    for (const owner of USERS) {
      for (const action of ['can_update_todo', 'can_delete_todo'] as const) {
        out.push({ request: { subject: subject(u), action: { name: action }, resource: todo(owner.email) }, expected: RULES[action](u, owner.email), label: `${u.email} ${action} ${owner.email}'s todo` });
      }
    }
  }
  return out;
}

describe('AuthZEN: the Todo interop scenario on the shipped example', () => {
  let example: TodoExample;
  let running: TestRunning;
  let url: string;
  let pep: string; // the todo backend's API key, from pep-token.sh
  let other: string; // an app of another boundary, also allowed pdp.query
  let adminSession: string;

  const request = async (method: string, path: string, body?: unknown, token?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url + path, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token && { authorization: `Bearer ${token}` }), ...headers },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Json, headers: res.headers };
  };
  const post = (path: string, body: unknown, token = pep, headers?: Record<string, string>) => request('POST', path, body, token, headers);

  before(async () => {
    // The example as shipped, with a second boundary and an app of its own (for the boundary tests).
    example = await startTodoExample((doc, scratch) => {
      doc.setIn(['boundaries'], doc.createNode(['todo', 'platform', 'other']));
      doc.addIn(['identities'], doc.createNode({ id: 'service-account:other-app', kind: 'service-account', boundary: 'other', environment: 'demo' }));
      doc.addIn(['resources'], doc.createNode({ type: 'user', id: 'elsewhere@example.com', boundary: 'other', environment: 'demo' }));
      doc.setIn(['authzen', 'rate_limit'], doc.createNode({ requests: 1000, window: '1h' }));
      writeFileSync(join(scratch, 'policies', 'other.cedar'), 'permit (principal == ServiceAccount::"service-account:other-app", action == Action::"pdp.query", resource == ControlPlane::"pdp");\n');
    });
    ({ running, url, pep, adminSession } = example);
    const minted = await request('POST', '/v1/apikeys', { identity: 'service-account:other-app', ttl: '1d' }, adminSession);
    other = minted.body?.api_key ?? '';
  });

  after(async () => {
    await example?.stop();
  });

  it('publishes its PDP metadata at /.well-known/authzen-configuration', async () => {
    const r = await request('GET', '/.well-known/authzen-configuration');
    assert.equal(r.status, 200);
    assert.equal(r.body.policy_decision_point, url);
    for (const [k, p] of [['access_evaluation_endpoint', 'evaluation'], ['access_evaluations_endpoint', 'evaluations'], ['search_subject_endpoint', 'search/subject'], ['search_resource_endpoint', 'search/resource'], ['search_action_endpoint', 'search/action']]) {
      assert.equal(r.body[k!], `${url}/access/v1/${p}`);
    }
  });

  it('/openapi.json names each AuthZEN operation, and real answers (2xx and errors) match their declared schemas', async () => {
    const doc = (await request('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { operationId?: string; responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };
    const ops: [string, string, string][] = [
      ['/.well-known/authzen-configuration', 'get', 'getAuthzenConfiguration'],
      ['/access/v1/evaluation', 'post', 'authzenEvaluation'],
      ['/access/v1/evaluations', 'post', 'authzenEvaluations'],
      ['/access/v1/search/subject', 'post', 'authzenSearchSubject'],
      ['/access/v1/search/resource', 'post', 'authzenSearchResource'],
      ['/access/v1/search/action', 'post', 'authzenSearchAction'],
      ['/.well-known/oauth-authorization-server', 'get', 'getAuthorizationServerMetadata'],
      ['/.well-known/openid-configuration', 'get', 'getOpenidConfiguration'],
    ];
    for (const [path, method, id] of ops) assert.equal(doc.paths[path]?.[method]?.operationId, id, path);
    for (const code of ['400', '401', '403', '429']) assert.ok(doc.paths['/access/v1/evaluations']!.post!.responses[code]?.content?.['application/problem+json'], code);
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    const check = (res: { status: number; body: unknown; headers: Headers }, path: string, method = 'post') => {
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
      const schema = doc.paths[path]![method]!.responses[String(res.status)]?.content?.[type]?.schema;
      assert.ok(schema, `${method} ${path} ${res.status} ${type} is declared`);
      // Shared shapes (Problem…) are $refs into components: compile with them beside the schema.
      const validate = ajv.compile({ ...schema, components: (doc as { components?: unknown }).components });
      assert.ok(validate(res.body), `${path} ${res.status}: ${JSON.stringify(validate.errors)} ${JSON.stringify(res.body)}`);
    };
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const e = { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo() };
    check(await request('GET', '/.well-known/authzen-configuration'), '/.well-known/authzen-configuration', 'get');
    check(await request('GET', '/.well-known/oauth-authorization-server'), '/.well-known/oauth-authorization-server', 'get');
    check(await post('/access/v1/evaluation', e), '/access/v1/evaluation');
    check(await post('/access/v1/evaluation', { ...e, subject: { type: 'user', id: 'nobody' } }), '/access/v1/evaluation');
    check(await post('/access/v1/evaluations', { ...e, evaluations: [{}, { action: { name: 'can_create_todo' } }] }), '/access/v1/evaluations');
    check(await post('/access/v1/evaluations', e), '/access/v1/evaluations');
    check(await post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read_todos' }, resource: todo() }), '/access/v1/search/subject');
    check(await post('/access/v1/search/resource', { subject: subject(morty), action: { name: 'can_read_user' }, resource: { type: 'user' }, page: { limit: 2 } }), '/access/v1/search/resource');
    check(await post('/access/v1/search/action', { subject: subject(morty), resource: todo() }), '/access/v1/search/action');
    check(await post('/access/v1/evaluation', { ...e, action: {} }), '/access/v1/evaluation');
    check(await post('/access/v1/evaluation', e, 'pcx_notakey'), '/access/v1/evaluation');
    check(await post('/access/v1/evaluation', e, adminSession), '/access/v1/evaluation');
  });

  it('every rule: each role × action × own and others\' todos, one evaluation at a time', async () => {
    const all = cases();
    assert.equal(all.length, USERS.length * (USERS.length * 2 + 2 + USERS.length * 2));
    let allowed = 0;
    for (const c of all) {
      const r = await post('/access/v1/evaluation', c.request);
      assert.equal(r.status, 200, `${c.label}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body, { decision: c.expected }, c.label);
      if (c.expected) allowed++;
    }
    assert.ok(allowed > 20 && allowed < all.length - 20, 'both outcomes are exercised');
  });

  it('the same cases in batches: defaults at the top level, one decision per item in order', async () => {
    for (const u of USERS) {
      const mine = cases().filter((c) => (c.request.subject as { id: string }).id === u.sid);
      // The subject is the default; each item brings its action and resource.
      const r = await post('/access/v1/evaluations', { subject: subject(u), evaluations: mine.map((c) => ({ action: c.request.action, resource: c.request.resource })) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { evaluations: mine.map((c) => ({ decision: c.expected })) }, u.email);
    }
  });

  it('an item overrides the defaults; no items is one evaluation of the top level; a missing member is named', async () => {
    const [rick, morty] = [USERS.find((u) => u.roles.includes('admin'))!, USERS.find((u) => u.email.startsWith('morty'))!];
    const r = await post('/access/v1/evaluations', {
      subject: subject(morty),
      action: { name: 'can_update_todo' },
      resource: todo(rick.email),
      evaluations: [{}, { resource: todo(morty.email) }, { subject: subject(rick) }, { action: { name: 'can_delete_todo' }, subject: subject(rick) }],
    });
    assert.deepEqual(r.body, { evaluations: [{ decision: false }, { decision: true }, { decision: true }, { decision: true }] });
    const single = await post('/access/v1/evaluations', { subject: subject(morty), action: { name: 'can_create_todo' }, resource: todo() });
    assert.deepEqual(single.body, { decision: true });
    const missing = await post('/access/v1/evaluations', { action: { name: 'can_read_todos' }, evaluations: [{ subject: subject(morty), resource: todo() }, { resource: todo() }] });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.field, 'evaluations[1].subject');
    const typo = await post('/access/v1/evaluations', { subject: subject(morty), resource: todo(), evaluations: [{ action: { name: 'can_read_todos' } }, { action: { name: 'can_reed_todos' } }] });
    assert.equal(typo.status, 400);
    assert.equal(typo.body.code, 'unknown_action');
    assert.equal(typo.body.field, 'evaluations[1].action.name');
    assert.deepEqual(typo.body.suggestions, ['can_read_todos']);
    const stranger = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo(), extra: 1 });
    assert.equal(stranger.status, 400);
    assert.match(stranger.body.field, /extra/);
  });

  it('batch semantics: deny_on_first_deny stops at the first deny, permit_on_first_permit at the first permit', async () => {
    const beth = USERS.find((u) => u.email.startsWith('beth'))!;
    const items = [{ action: { name: 'can_read_todos' } }, { action: { name: 'can_create_todo' } }, { action: { name: 'can_read_todos' } }];
    const base = { subject: subject(beth), resource: todo() };
    const all = await post('/access/v1/evaluations', { ...base, evaluations: items });
    assert.deepEqual(all.body, { evaluations: [{ decision: true }, { decision: false }, { decision: true }] });
    const explicit = await post('/access/v1/evaluations', { ...base, evaluations: items, options: { evaluations_semantic: 'execute_all', another_option: 'ignored' } });
    assert.deepEqual(explicit.body, all.body);
    const deny = await post('/access/v1/evaluations', { ...base, evaluations: items, options: { evaluations_semantic: 'deny_on_first_deny' } });
    assert.deepEqual(deny.body, { evaluations: [{ decision: true }, { decision: false }] });
    const permit = await post('/access/v1/evaluations', { ...base, evaluations: [items[1], items[0], items[1]], options: { evaluations_semantic: 'permit_on_first_permit' } });
    assert.deepEqual(permit.body, { evaluations: [{ decision: false }, { decision: true }] });
    const bad = await post('/access/v1/evaluations', { ...base, evaluations: items, options: { evaluations_semantic: 'first_wins' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.field, /options\.evaluations_semantic/);
  });

  it('an unknown subject or resource is decision false (not 404), and says which', async () => {
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const nobody = await post('/access/v1/evaluation', { subject: { type: 'user', id: 'nobody' }, action: { name: 'can_read_user' }, resource: { type: 'user', id: morty.email } });
    assert.deepEqual(nobody.body, { decision: false, context: { reason: 'subject_not_found' } });
    const kind = await post('/access/v1/evaluation', { subject: { type: 'robot', id: morty.sid }, action: { name: 'can_read_user' }, resource: { type: 'user', id: morty.email } });
    assert.deepEqual(kind.body, { decision: false, context: { reason: 'subject_not_found' } });
    const user = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_user' }, resource: { type: 'user', id: 'nobody@example.com' } });
    assert.deepEqual(user.body, { decision: false, context: { reason: 'resource_not_found' } });
    const type = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_todos' }, resource: { type: 'Database', id: 'orders' } });
    assert.deepEqual(type.body, { decision: false, context: { reason: 'resource_not_found' } });
    const batch = await post('/access/v1/evaluations', { subject: subject(morty), action: { name: 'can_read_user' }, evaluations: [{ resource: { type: 'user', id: morty.email } }, { resource: { type: 'user', id: 'nobody@example.com' } }] });
    assert.deepEqual(batch.body, { evaluations: [{ decision: true }, { decision: false, context: { reason: 'resource_not_found' } }] });
  });

  it('an app asking outside its own boundary is refused: exactly the answer an unknown subject or resource gets', async () => {
    assert.match(other, /^pcx_/, 'the admin minted a key for the other app');
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    // The policy would allow it (anyone reads users); the broker refuses the other boundary's subject.
    const theirs = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_user' }, resource: { type: 'user', id: morty.email } }, other);
    assert.deepEqual(theirs.body, { decision: false, context: { reason: 'subject_not_found' } });
    const unknown = await post('/access/v1/evaluation', { subject: { type: 'user', id: 'nobody' }, action: { name: 'can_read_user' }, resource: { type: 'user', id: morty.email } }, other);
    assert.deepEqual(unknown.body, theirs.body, 'no way to tell another boundary\'s subject from a missing one');
    // The todo backend may not name the other boundary's resource either.
    const resource = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_user' }, resource: { type: 'user', id: 'elsewhere@example.com' } });
    assert.deepEqual(resource.body, { decision: false, context: { reason: 'resource_not_found' } });
    // And todos are described in `todo` only.
    const todos = await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo() }, other);
    assert.deepEqual(todos.body, { decision: false, context: { reason: 'subject_not_found' } });
    // Each refusal is on record with its true reason.
    const recs = await running.broker.audit.query({ stream: 'authz', actor: 'service-account:other-app', subject: `user:${morty.sid}` });
    assert.ok(recs.length >= 2);
    assert.ok(recs.every((r) => r.decision === 'deny' && r.payload.refused === 'subject_not_found' && /boundary todo/.test(String(r.payload.detail))));
  });

  it('asking needs pdp.query (an administrator has no such right by default), and a credential', async () => {
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const body = { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo() };
    const admin = await post('/access/v1/evaluation', body, adminSession);
    assert.equal(admin.status, 403);
    assert.match(admin.body.detail, /pdp\.query/);
    assert.match(admin.body.decision_id, /^[0-9a-f-]{36}$/);
    const [rec] = await running.broker.audit.query({ stream: 'authz', actor: 'user:admin', order: 'desc', limit: 1 });
    assert.equal(rec!.payload.action, 'pdp.query');
    assert.equal(rec!.decision, 'deny');
    assert.equal((await post('/access/v1/evaluation', body, '')).status, 401);
    assert.equal((await post('/access/v1/evaluation', body, 'pcx_notakey')).status, 401);
    const revoked = await request('POST', '/v1/apikeys', { identity: 'service-account:todo-backend', ttl: '1d' }, adminSession);
    assert.equal((await post('/access/v1/evaluation', body, revoked.body.api_key)).status, 200);
    assert.equal((await request('POST', `/v1/apikeys/${revoked.body.id}/revoke`, { reason: 'test' }, adminSession)).status, 200);
    assert.equal((await post('/access/v1/evaluation', body, revoked.body.api_key)).status, 401, 'a revoked key is refused at once');
  });

  it('each evaluation is in the authz stream once, attributed to the app (actor) and the subject', async () => {
    const rick = USERS.find((u) => u.roles.includes('admin'))!;
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const r = await post('/access/v1/evaluation', { subject: subject(rick), action: { name: 'can_update_todo' }, resource: todo(morty.email) }, pep, { 'x-request-id': 'req-authz-stream-1' });
    assert.deepEqual(r.body, { decision: true });
    assert.equal(r.headers.get('x-request-id'), 'req-authz-stream-1');
    await running.broker.audit.flush();
    const recs = (await running.broker.audit.query({ stream: 'authz', identity: `user:${rick.sid}`, limit: 1000 })).filter((x) => x.payload.request_id === 'req-authz-stream-1');
    assert.equal(recs.length, 1, 'one record for the evaluation (the app\'s own pdp.query decision is inside it)');
    const rec = recs[0]!;
    assert.equal(rec.actor, 'service-account:todo-backend');
    assert.equal(rec.subject, `user:${rick.sid}`);
    assert.equal(rec.decision, 'allow');
    assert.equal(rec.boundary, 'todo');
    assert.equal(rec.payload.action, 'can_update_todo');
    assert.equal(rec.payload.resource, `todo::${TODO}`);
    assert.deepEqual(rec.payload.reasons, ['todo:evil-geniuses-update-any-todo']);
    assert.deepEqual(rec.payload.authn, { method: 'authzen', trust: 'service-account:todo-backend' });
    const asked = rec.payload.asked_by as Record<string, unknown>;
    assert.deepEqual(asked.reasons, ['todo:backend-asks-the-pdp']);
    assert.match(String(asked.session), /^apikey:/, 'the app asked with its API key');
    // A batch: one record per item, both identities on each.
    const batch = await post('/access/v1/evaluations', { subject: subject(morty), resource: todo(), evaluations: [{ action: { name: 'can_read_todos' } }, { action: { name: 'can_create_todo' } }] }, pep, { 'x-request-id': 'req-authz-stream-2' });
    assert.equal(batch.status, 200);
    const items = (await running.broker.audit.query({ stream: 'authz', actor: 'service-account:todo-backend', subject: `user:${morty.sid}`, limit: 1000 })).filter((x) => x.payload.request_id === 'req-authz-stream-2');
    assert.deepEqual(items.map((x) => x.payload.action).sort(), ['can_create_todo', 'can_read_todos']);
    const v = await request('GET', '/v1/audit/verify', undefined, adminSession);
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
  });

  it('subject search: the declared users allowed, paged', async () => {
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const who = await post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_update_todo' }, resource: todo(morty.email) });
    assert.equal(who.status, 200, JSON.stringify(who.body));
    const expected = USERS.filter((u) => RULES.can_update_todo(u, morty.email)).map((u) => u.sid).sort();
    assert.deepEqual(who.body.results.map((s: { id: string }) => s.id), expected);
    assert.ok(who.body.results.every((s: { type: string }) => s.type === 'user'));
    assert.deepEqual(who.body.page, { next_token: '', count: expected.length });
    // What the search returns, evaluated, is allowed (AuthZEN §8.2).
    for (const s of who.body.results) assert.deepEqual((await post('/access/v1/evaluation', { subject: s, action: { name: 'can_update_todo' }, resource: todo(morty.email) })).body, { decision: true });
  });

  it('resource search: the declared resources allowed, in pages that chain by next_token', async () => {
    const beth = USERS.find((u) => u.email.startsWith('beth'))!;
    const ids: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await post('/access/v1/search/resource', { subject: subject(beth), action: { name: 'can_read_user' }, resource: { type: 'user' }, page: { limit: 4, ...(token && { token }) } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.results.length <= 4);
      ids.push(...r.body.results.map((x: { id: string }) => x.id));
      token = r.body.page.next_token || undefined;
      pages++;
    } while (token && pages < 10);
    assert.deepEqual(ids, USERS.flatMap((u) => [u.email, u.sid]).sort(), 'every user of the todo boundary (not the other boundary\'s), once');
    assert.equal(pages, 3);
    const first = await post('/access/v1/search/resource', { subject: subject(beth), action: { name: 'can_read_user' }, resource: { type: 'user' }, page: { limit: 4 } });
    const forged = await post('/access/v1/search/resource', { subject: subject(beth), action: { name: 'can_read_todos' }, resource: { type: 'user' }, page: { token: first.body.page.next_token } });
    assert.equal(forged.status, 400, 'a token belongs to its own search');
    assert.equal(forged.body.field, 'page.token');
  });

  it('action search: the scenario actions a user may do on a todo', async () => {
    const [rick, beth, morty] = [USERS.find((u) => u.roles.includes('admin'))!, USERS.find((u) => u.email.startsWith('beth'))!, USERS.find((u) => u.email.startsWith('morty'))!];
    const names = async (u: User, owner: string) => (await post('/access/v1/search/action', { subject: subject(u), resource: todo(owner) })).body.results.map((a: { name: string }) => a.name);
    assert.deepEqual(await names(rick, morty.email), ['can_create_todo', 'can_delete_todo', 'can_read_todos', 'can_update_todo']);
    assert.deepEqual(await names(morty, rick.email), ['can_create_todo', 'can_read_todos']);
    assert.deepEqual(await names(beth, beth.email), ['can_read_todos']);
  });

  it('pdp.query is rate-limited per app: a batch counts each item; the first refusal is recorded', async () => {
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const batch = { subject: subject(morty), action: { name: 'can_read_todos' }, evaluations: Array.from({ length: 100 }, () => ({ resource: todo() })) };
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    let sent = 0;
    for (let i = 0; i < 12 && !refused; i++) {
      const r = await post('/access/v1/evaluations', batch, other);
      if (r.status === 429) refused = r;
      else {
        assert.equal(r.status, 200);
        sent += 100;
      }
    }
    assert.ok(refused, 'refused within the limit of 1000 an hour');
    assert.ok(sent >= 900 && sent <= 1000, `${sent} evaluations before the refusal`);
    assert.equal(refused.body.code, 'rate_limited');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    // The todo backend is counted apart.
    assert.equal((await post('/access/v1/evaluation', { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo() })).status, 200);
    const recs = await running.broker.audit.query({ stream: 'authz', type: 'pdp.rate_limited', actor: 'service-account:other-app' });
    assert.equal(recs.length, 1);
  });
  it('a policy change takes the app\'s right away at once (its pdp.query is decided with every evaluation)', async () => {
    const morty = USERS.find((u) => u.email.startsWith('morty'))!;
    const body = { subject: subject(morty), action: { name: 'can_read_todos' }, resource: todo() };
    assert.deepEqual((await post('/access/v1/evaluation', body)).body, { decision: true });
    const put = await request('PUT', '/v1/policies', { files: [{ name: 'stop.cedar', text: '@id("stop-the-backend") forbid (principal == ServiceAccount::"service-account:todo-backend", action == Action::"pdp.query", resource);' }], reason: 'the todo backend is compromised' }, adminSession);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const refused = await post('/access/v1/evaluation', body);
    assert.equal(refused.status, 403, 'refused within the same second as the last allowed answer');
    const [rec] = await running.broker.audit.query({ stream: 'authz', actor: 'service-account:todo-backend', order: 'desc', limit: 1 });
    assert.equal(rec!.payload.action, 'pdp.query');
    assert.deepEqual(rec!.payload.reasons, ['stop-the-backend']);
  });
});
