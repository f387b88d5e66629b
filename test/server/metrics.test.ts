// /metrics behind a bearer token or on its own listener; the public endpoints stay public.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { startHarness } from '../integration/harness.ts';
import { raw } from './http.ts';

describe('/metrics', () => {
  test('behind a bearer token (metrics.token_env)', async () => {
    const secret = 'metrics-token-0123456789';
    const h = await startHarness('metrics: { token_env: PCX_METRICS_TOKEN }\n', { PCX_METRICS_TOKEN: secret });
    try {
      assert.equal((await raw(h.url, 'GET', '/metrics')).status, 401);
      assert.equal((await raw(h.url, 'GET', '/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
      assert.equal((await raw(h.url, 'GET', '/metrics', { headers: { authorization: `Basic ${secret}` } })).status, 401);
      const ok = await raw(h.url, 'GET', '/metrics', { headers: { authorization: `bearer ${secret}` } });
      assert.equal(ok.status, 200);
      assert.match(String(ok.body), /portcullis_http_requests_total/);
      // The public endpoints stay public.
      for (const p of ['/healthz', '/readyz', '/.well-known/jwks.json', '/openapi.json']) assert.equal((await raw(h.url, 'GET', p)).status, 200, p);
    } finally {
      await h.close();
    }
  });

  test('on a separate listener (metrics.listen): gone from the API listener', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const h = await startHarness(`metrics: { listen: { host: 127.0.0.1, port: ${port} } }\n`);
    try {
      assert.equal((await raw(h.url, 'GET', '/metrics')).status, 404);
      const m = await raw(`http://127.0.0.1:${port}`, 'GET', '/metrics');
      assert.equal(m.status, 200);
      assert.match(String(m.body), /portcullis_decisions_total/);
      assert.equal((await raw(`http://127.0.0.1:${port}`, 'GET', '/v1/identities')).status, 404, 'only /metrics on the metrics listener');
      assert.equal(h.running.metricsUrl, `http://127.0.0.1:${port}`);
    } finally {
      await h.close();
    }
    // Closed with the server.
    await assert.rejects(raw(`http://127.0.0.1:${port}`, 'GET', '/metrics'));
  });

  test('metrics config errors name the field', async () => {
    const { parseConfig } = await import('../../src/config/load.ts');
    const field = (yaml: string, env: Record<string, string> = {}) => {
      try {
        parseConfig(yaml, '/tmp', env);
      } catch (e) {
        return (e as { extra?: { field?: string } }).extra?.field;
      }
      return 'accepted';
    };
    assert.equal(field('metrics: { token_env: NOPE_NOT_SET }\n'), 'metrics.token_env');
    assert.equal(field('metrics: { token_env: SHORT }\n', { SHORT: 'abc' }), 'metrics.token_env');
    assert.equal(field('metrics: { listen: { host: 127.0.0.1 } }\n'), 'metrics.listen.port');
    assert.equal(field('metrics: { bogus: 1 }\n'), 'metrics.bogus');
    assert.equal(field('limits: { login: { per_key: { requests: 0 } } }\n'), 'limits.login.per_key.requests');
    assert.equal(field('listen: { timeouts: { headers: 20s, request: 10s } }\n'), 'listen.timeouts.request');
  });
});
