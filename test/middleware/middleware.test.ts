// packages/middleware against the shipped AuthZEN Todo example on a real server: an Express app
// and a Fastify app guard their routes with it over real HTTP — allowed, denied (403), no subject
// (401), Portcullis unreachable (503, fail closed) — and its cache serves repeated questions but
// never an answer older than a policy version it has seen.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Pdp } from '../../packages/middleware/src/index.ts';
import type { Evaluation } from '../../packages/middleware/src/index.ts';
import { authorize as expressGuard } from '../../packages/middleware/src/express.ts';
import { authorize as fastifyGuard } from '../../packages/middleware/src/fastify.ts';
import { startTodoExample } from '../integration/authzen-example.ts';
import type { TodoExample } from '../integration/authzen-example.ts';

const MORTY = 'CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs'; // editor
const BETH = 'CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs'; // viewer

/** The question a todo app asks for `POST /todos` by the user named in `x-user`. */
const createTodo = (user: string | undefined): Evaluation | undefined =>
  user ? { subject: { type: 'user', id: user }, action: { name: 'can_create_todo' }, resource: { type: 'todo', id: 'todo-1' } } : undefined;

describe('@portcullis/middleware over the AuthZEN Todo example', () => {
  let example: TodoExample;
  let pdp: Pdp;
  let expressUrl: string;
  let expressServer: Server;
  let fastify: FastifyInstance;
  let fastifyUrl: string;

  before(async () => {
    example = await startTodoExample();
    pdp = new Pdp({ url: example.url, token: example.pep, cacheTtlMs: 60_000 });
    const app = express();
    app.post('/todos', expressGuard(pdp, (req) => createTodo(req.get('x-user'))), (_req, res) => {
      res.json({ created: true, cached: res.locals.portcullis.cached });
    });
    expressServer = app.listen(0, '127.0.0.1');
    await new Promise((r) => expressServer.once('listening', r));
    expressUrl = `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`;
    fastify = Fastify();
    fastify.post('/todos', { preHandler: fastifyGuard(pdp, (req) => createTodo(req.headers['x-user'] as string | undefined)) }, async (req) => ({ created: true, cached: req.portcullis!.cached }));
    fastifyUrl = await fastify.listen({ port: 0, host: '127.0.0.1' });
  });

  after(async () => {
    await fastify?.close();
    await new Promise((r) => expressServer?.close(r));
    await example?.stop();
  });

  const call = async (base: string, user?: string) => {
    const res = await fetch(`${base}/todos`, { method: 'POST', headers: user ? { 'x-user': user } : {} });
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as Record<string, unknown> };
  };

  for (const [name, base] of [['Express', () => expressUrl], ['Fastify', () => fastifyUrl]] as const) {
    it(`${name}: an editor may create a todo, a viewer is refused with 403, no subject is 401`, async () => {
      pdp.clear();
      const ok = await call(base(), MORTY);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, { created: true, cached: false });
      const denied = await call(base(), BETH);
      assert.equal(denied.status, 403);
      assert.match(denied.type, /^application\/problem\+json/);
      assert.match(String(denied.body.detail), /may not can_create_todo/);
      assert.equal((await call(base())).status, 401);
    });
  }

  it('a repeated question is answered from the cache, and the authz stream records only the asked one', async () => {
    pdp.clear();
    const before = (await example.running.broker.audit.query({ stream: 'authz', actor: 'service-account:todo-backend' })).length;
    assert.deepEqual((await call(expressUrl, MORTY)).body, { created: true, cached: false });
    assert.deepEqual((await call(fastifyUrl, MORTY)).body, { created: true, cached: true }, 'one cache for both apps of this PEP');
    const after = (await example.running.broker.audit.query({ stream: 'authz', actor: 'service-account:todo-backend' })).length;
    assert.equal(after - before, 1);
    assert.equal(typeof pdp.policyVersion, 'number');
  });

  it('an answer is never reused once an answer shows a newer policy version', async () => {
    pdp.clear();
    assert.equal((await call(expressUrl, MORTY)).status, 200);
    assert.equal((await call(expressUrl, MORTY)).body.cached, true);
    const seen = pdp.policyVersion!;
    // An administrator forbids creating todos; the PEP does not know yet.
    const put = await fetch(`${example.url}/v1/policies`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${example.adminSession}` },
      body: JSON.stringify({ files: [{ name: 'freeze.cedar', text: '@id("freeze") forbid (principal, action == Action::"can_create_todo", resource);' }], reason: 'content freeze' }),
    });
    assert.equal(put.status, 200, await put.text());
    // Any other question reaches the server and carries the new version…
    assert.equal((await call(expressUrl, BETH)).status, 403);
    assert.ok(pdp.policyVersion! > seen, `version ${pdp.policyVersion} after ${seen}`);
    // …so the cached allow is gone and the freeze applies.
    const frozen = await call(expressUrl, MORTY);
    assert.equal(frozen.status, 403);
  });

  it('fails closed: Portcullis unreachable or refusing the PEP credential is a 503, never a pass', async () => {
    const dead = new Pdp({ url: 'http://127.0.0.1:9', token: example.pep, timeoutMs: 500 });
    const badKey = new Pdp({ url: example.url, token: 'pcx_not-a-key' });
    for (const p of [dead, badKey]) {
      const app = Fastify();
      app.post('/todos', { preHandler: fastifyGuard(p, (req) => createTodo(req.headers['x-user'] as string | undefined)) }, async () => ({ created: true }));
      const base = await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const r = await call(base, MORTY);
        assert.equal(r.status, 503);
        assert.doesNotMatch(JSON.stringify(r.body), /pcx_/, 'no credential in the answer');
      } finally {
        await app.close();
      }
    }
  });

  it('without a cache every question is asked', async () => {
    const uncached = new Pdp({ url: example.url, token: example.pep, cacheTtlMs: 0 });
    const q = createTodo(BETH)!;
    assert.equal((await uncached.evaluate(q)).cached, false);
    assert.equal((await uncached.evaluate(q)).cached, false);
  });
});
