// One mapping from errors to RFC 9457 problem documents. Stable `code`s; no secrets in `detail`.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { PortcullisError } from '../common/errors.ts';
import { StepUpRequired } from '../access/index.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): Problem {
  return { type: `urn:portcullis:problem:${code}`, title: TITLES[status] ?? 'Error', status, code, detail, ...extra };
}

export function toProblem(err: unknown): Problem {
  if (err instanceof PortcullisError) return problem(err.status, err.code, err.message, err.extra);
  const e = err as FastifyError & { validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] };
  if (e.validation && e.validation.length > 0) {
    const v = e.validation[0]!;
    const where = (e.validationContext ?? 'body') as string;
    const extraProp = v.params?.additionalProperty as string | undefined;
    const missing = v.params?.missingProperty as string | undefined;
    const path = `${where}${v.instancePath.replaceAll('/', '.')}${extraProp ? `.${extraProp}` : ''}${missing ? `.${missing}` : ''}`;
    const message = extraProp ? 'is not a known field' : missing ? 'is required' : (v.message ?? 'is invalid');
    return problem(400, 'invalid_input', `${path} ${message}`, { field: path });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'malformed_json', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'body_too_large', 'the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'unsupported_media_type', 'send application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem(400, 'malformed_request', 'content-length does not match the body');
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problem(e.statusCode, 'bad_request', e.message);
  }
  return problem(500, 'internal', 'internal error; see the server log');
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p);
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const p = toProblem(err);
  if (p.status >= 500) req.log.error({ err }, 'request failed');
  // RFC 9470: tell standard clients what a new login must bring.
  if (err instanceof StepUpRequired) reply.header('www-authenticate', err.wwwAuthenticate(typeof err.extra.acr_values === 'string' ? err.extra.acr_values : undefined));
  return sendProblem(reply, p);
}
