// The OpenAPI document of this build without a running server: the real Fastify app over a
// throwaway broker (an empty SQLite store in a temporary folder). For the SDK generator and tests.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseConfig } from '../config/load.ts';
import { Broker } from '../broker/index.ts';
import { buildServer } from './app.ts';

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, Record<string, unknown>>> };

/** The document `/openapi.json` serves for the default configuration (no config file read), or with `extraYaml` (and its `env`). */
export async function openapiDocument(extraYaml = '', env: NodeJS.ProcessEnv = {}): Promise<OpenApiDocument> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-openapi-'));
  try {
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'main.cedar'), '');
    const { config } = parseConfig(`listen: { host: 127.0.0.1, port: 0 }\ndata_dir: ./data\npolicies: ./policies\n${extraYaml}`, dir, env);
    const broker = await Broker.open(config, { issuer: 'http://127.0.0.1:7070', log: () => {}, env: { PORTCULLIS_MASTER_KEY: randomBytes(32).toString('base64') } });
    try {
      const app = await buildServer(broker);
      await app.ready();
      const doc = app.swagger() as unknown as OpenApiDocument;
      await app.close();
      return JSON.parse(JSON.stringify(doc)) as OpenApiDocument;
    } finally {
      await broker.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
