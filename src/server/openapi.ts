// Zod at the HTTP edge: route schemas are zod schemas; this validates request parts with them
// (the first problem named by its field), and turns them into the OpenAPI document's JSON Schema.
import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import { InvalidInput } from '../common/errors.ts';

const isZod = (s: unknown): s is z.ZodType => s instanceof z.ZodType;

/** The value at a path of the input, to tell a missing member from a wrong one. */
function at(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** The first issue as an `invalid_input` error naming its field: `body.ttl`, `querystring.limit`, `params.id`. */
export function invalidInputOf(where: string, data: unknown, error: z.ZodError): InvalidInput {
  const issue = error.issues[0]!;
  const base = [where, ...issue.path.map(String)].join('.');
  if (issue.code === 'unrecognized_keys') {
    const field = `${base}.${issue.keys[0]!}`;
    return new InvalidInput(`${field} is not a known field`, field);
  }
  if (issue.path.length > 0 && at(data, issue.path) === undefined) return new InvalidInput(`${base} is required`, base);
  return new InvalidInput(`${base} ${issue.message.replace(/^Invalid input: /, '')}`, base);
}

/**
 * Validates body, querystring, params and headers with their zod schemas. Nothing is coerced nor
 * stripped: a valid request reaches its handler as it was sent.
 */
export function installZod(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (!isZod(schema)) throw new Error(`route schema for ${String(httpPart)} is not a zod schema`);
    const where = httpPart ?? 'body';
    return (data: unknown) => {
      const r = schema.safeParse(data);
      return r.success ? {} : { error: invalidInputOf(where, data, r.error) };
    };
  });
  // Responses are the DTOs' work (src/server/dto.ts); their schemas document them (and a test checks them).
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
}

const jsonSchema = (s: z.ZodType, io: 'input' | 'output'): Record<string, unknown> => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function convertResponse(r: unknown): unknown {
  if (isZod(r)) return jsonSchema(r, 'output');
  if (r === null || typeof r !== 'object') return r;
  const o = r as { content?: Record<string, { schema: unknown }> };
  if (!o.content) return r;
  return { ...o, content: Object.fromEntries(Object.entries(o.content).map(([t, c]) => [t, { ...c, schema: isZod(c.schema) ? jsonSchema(c.schema, 'output') : c.schema }])) };
}

/** @fastify/swagger `transform`: zod request and response schemas → JSON Schema. */
export function openapiTransform({ schema, url }: { schema: Record<string, unknown>; url: string }): { schema: Record<string, unknown>; url: string } {
  if (!schema) return { schema, url };
  const out: Record<string, unknown> = { ...schema };
  for (const part of ['body', 'querystring', 'params', 'headers']) if (isZod(schema[part])) out[part] = jsonSchema(schema[part], 'input');
  if (schema.response && typeof schema.response === 'object') {
    out.response = Object.fromEntries(Object.entries(schema.response as Record<string, unknown>).map(([code, r]) => [code, convertResponse(r)]));
  }
  return { schema: out, url };
}
