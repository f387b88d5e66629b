// Zod at the HTTP edge: route schemas are zod schemas; this validates request parts with them
// (the first problem named by its field), and turns them into the OpenAPI document's JSON Schema.
import { z } from 'zod';
import type { FastifyInstance, RouteOptions } from 'fastify';
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

/**
 * The shared response shapes (`.meta({ id })` in schemas.ts) are converted once into
 * `components.schemas` and referenced from every operation (`#/components/schemas/Identity`), so
 * the document stays small and a generated client names them. A shape whose input and output
 * forms differ cannot be shared: that is refused here rather than documented wrongly.
 */
export type SchemaComponents = Map<string, unknown> & { optionalBodies: Set<string> };
export const schemaComponents = (): SchemaComponents => Object.assign(new Map<string, unknown>(), { optionalBodies: new Set<string>() });
const COMPONENT_REF = '#/components/schemas/';
const toComponentRefs = (v: unknown): unknown => JSON.parse(JSON.stringify(v).replaceAll('"#/$defs/', `"${COMPONENT_REF}`));

const jsonSchema = (s: z.ZodType, io: 'input' | 'output', components: SchemaComponents): Record<string, unknown> => {
  const { $schema: _drop, $defs, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, unknown>)) {
    const converted = toComponentRefs(def);
    const known = components.get(id);
    if (known !== undefined && JSON.stringify(known) !== JSON.stringify(converted)) throw new Error(`OpenAPI: schema ${id} has two forms (used as ${io} and otherwise); give one of them another id`);
    components.set(id, converted);
  }
  return toComponentRefs(rest) as Record<string, unknown>;
};

function convertResponse(r: unknown, components: SchemaComponents): unknown {
  if (isZod(r)) return jsonSchema(r, 'output', components);
  if (r === null || typeof r !== 'object') return r;
  const o = r as { content?: Record<string, { schema: unknown }> };
  if (!o.content) return r;
  return { ...o, content: Object.fromEntries(Object.entries(o.content).map(([t, c]) => [t, { ...c, schema: isZod(c.schema) ? jsonSchema(c.schema, 'output', components) : c.schema }])) };
}

/**
 * @fastify/swagger `transform`: zod request and response schemas → JSON Schema (shared shapes
 * collected into `components`). `documentedBody` documents a body its handler checks itself (the
 * RFC 8693 form, whose errors are RFC 6749's): it is not validated at the edge.
 */
export function openapiTransform(components: SchemaComponents) {
  return ({ schema, url, route }: { schema: Record<string, unknown>; url: string; route?: { method: string | string[] } }): { schema: Record<string, unknown>; url: string } => {
    if (!schema) return { schema, url };
    const { documentedBody, ...out } = schema as Record<string, unknown> & { documentedBody?: { contentType: string; schema: z.ZodType } };
    for (const part of ['body', 'querystring', 'params', 'headers']) if (isZod(schema[part])) out[part] = jsonSchema(schema[part], 'input', components);
    // @fastify/swagger marks every body required; a POST with no body at all is accepted by these.
    if (isZod(schema.body) && schema.body.safeParse(undefined).success) {
      for (const m of [route?.method ?? []].flat()) components.optionalBodies.add(`${m.toLowerCase()} ${url.replace(/:(\w+)/g, '{$1}')}`);
    }
    if (documentedBody) {
      out.body = jsonSchema(documentedBody.schema, 'input', components);
      out.consumes = [documentedBody.contentType];
    }
    if (schema.response && typeof schema.response === 'object') {
      out.response = Object.fromEntries(Object.entries(schema.response as Record<string, unknown>).map(([code, r]) => [code, convertResponse(r, components)]));
    }
    return { schema: out, url };
  };
}

/** @fastify/swagger `transformObject`: the shared shapes, in a stable order; optional bodies not required. */
export function withComponents(components: SchemaComponents) {
  return ({ openapiObject }: { openapiObject: Record<string, unknown> }): Record<string, unknown> => {
    const c = (openapiObject.components ?? {}) as Record<string, unknown>;
    const schemas = Object.fromEntries([...components.entries()].sort(([a], [b]) => a.localeCompare(b)));
    const paths = (openapiObject.paths ?? {}) as Record<string, Record<string, { requestBody?: { required?: boolean } }>>;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) if (op.requestBody && components.optionalBodies.has(`${method} ${path}`)) op.requestBody.required = false;
    }
    return { ...openapiObject, components: { ...c, schemas: { ...(c.schemas as object), ...schemas } } };
  };
}

/**
 * Who may call an operation, documented from the route itself: a preHandler/onRequest hook made
 * by `securedBy` names its security requirement; a route with none is public (`security: []`).
 * A route may still say `security` in its schema.
 */
const SECURITY = Symbol('openapi security requirement');
export type SecurityRequirement = Record<string, string[]>[];
export function securedBy<F extends (...args: never[]) => unknown>(hook: F, requirement: SecurityRequirement): F {
  return Object.assign(hook, { [SECURITY]: requirement });
}
export function documentSecurity(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    if (!schema || schema.hide || schema.security !== undefined) return;
    const hooks = [route.onRequest, route.preValidation, route.preHandler].flat().filter(Boolean) as unknown as { [SECURITY]?: SecurityRequirement }[];
    schema.security = hooks.find((h) => h[SECURITY])?.[SECURITY] ?? [];
  });
}
