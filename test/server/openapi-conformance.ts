// Checks real answers against /openapi.json: the schema the document declares for that path,
// method, status and media type (shared shapes resolved from its components) must accept the body.
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

type Doc = { paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>>; components?: unknown };
export interface Answer { status: number; body: unknown; headers: Headers }

/** A checker over one document: `check(answer, '/v1/identities/{id}', 'get')`. */
export function conformance(doc: Doc): (res: Answer, path: string, method: string) => void {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  return (res, path, method) => {
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
    const schema = doc.paths[path]?.[method]?.responses?.[String(res.status)]?.content?.[type]?.schema;
    assert.ok(schema, `${method} ${path} ${res.status} ${type} is declared`);
    // Shared shapes are $refs into components: compile each schema with them beside it.
    const validate = ajv.compile({ ...(schema as object), components: doc.components });
    assert.ok(validate(res.body), `${method} ${path} ${res.status}: ${JSON.stringify(validate.errors)}\n${JSON.stringify(res.body)}`);
  };
}
