// The CLI's side of the API: PORTCULLIS_ADDR, the session token kept in PORTCULLIS_HOME, and the
// calls made through the SDK (packages/client), whose problems become errors with exit codes.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { PortcullisClient } from '../../packages/client/src/index.ts';

/** Exit codes: 0 ok · 1 failure · 2 bad usage or input · 3 denied · 4 not authenticated · 5 server unreachable/unavailable. */
export const EXIT = { ok: 0, failure: 1, usage: 2, denied: 3, unauthenticated: 4, unavailable: 5 } as const;

export class CliError extends Error {
  readonly exitCode: number;
  readonly problem?: Record<string, unknown>;
  constructor(message: string, exitCode: number, problem?: Record<string, unknown>) {
    super(message);
    this.exitCode = exitCode;
    if (problem !== undefined) this.problem = problem;
  }
}

/** The server's URL from PORTCULLIS_ADDR (default http://127.0.0.1:7070), validated. */
export function address(): string {
  const raw = process.env.PORTCULLIS_ADDR;
  if (raw === undefined || raw === '') return 'http://127.0.0.1:7070';
  const fix = `set it to the server's URL with its scheme, e.g. PORTCULLIS_ADDR=http://127.0.0.1:7070`;
  let url: URL | undefined;
  try {
    url = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? new URL(raw) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined) throw new CliError(`PORTCULLIS_ADDR="${raw}" is not a URL: ${fix}`, EXIT.usage);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`PORTCULLIS_ADDR="${raw}" must use http:// or https://: ${fix}`, EXIT.usage);
  if (url.username || url.password || url.search || url.hash) throw new CliError(`PORTCULLIS_ADDR="${raw}" must not carry credentials, a query or a fragment: ${fix}`, EXIT.usage);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** Where the CLI keeps its session and passfiles (PORTCULLIS_HOME, default ~/.portcullis). */
export function cliHome(): string {
  return home();
}

function home(): string {
  const h = process.env.PORTCULLIS_HOME;
  if (h === undefined) return join(homedir(), '.portcullis');
  if (h.trim() === '') throw new CliError('PORTCULLIS_HOME is set but empty: unset it (default ~/.portcullis) or name a directory', EXIT.usage);
  return h;
}

/** PORTCULLIS_TOKEN, when set, must be a session token (a JWT: three base64url parts). */
function envToken(): string | undefined {
  const t = process.env.PORTCULLIS_TOKEN;
  if (t === undefined || t === '') return undefined;
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t.trim())) {
    throw new CliError('PORTCULLIS_TOKEN is not a session token (expected a JWT, header.payload.signature): unset it, or set it to the session_token of a login', EXIT.usage);
  }
  return t.trim();
}

interface SavedSession {
  addr: string;
  session_token: string;
  expires_at: string;
  identity: string;
}

export function saveSession(s: SavedSession): string {
  const dir = home();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'session.json');
  writeFileSync(path, JSON.stringify(s, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

export function clearSession(): void {
  rmSync(join(home(), 'session.json'), { force: true });
}

/** The session token: PORTCULLIS_TOKEN wins, then the saved login for this address. */
export function sessionToken(): string {
  const fromEnv = envToken();
  if (fromEnv !== undefined) return fromEnv;
  const file = join(home(), 'session.json');
  let saved: SavedSession;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as SavedSession;
  } catch {
    throw new CliError('not logged in: run `portcullis login` first (--sso, --token-file FILE, --token - to read stdin, or --api-key-file FILE)', EXIT.unauthenticated);
  }
  if (saved.addr !== address()) throw new CliError(`the saved session is for ${saved.addr}, not ${address()}: log in again`, EXIT.unauthenticated);
  if (Date.parse(saved.expires_at) <= Date.now()) throw new CliError(`your session for ${saved.identity} expired at ${saved.expires_at}: log in again`, EXIT.unauthenticated);
  return saved.session_token;
}

/** What a `step_up_required` answer asks for (policy `@stepUp` / `@maxAuthAge`). */
export interface StepUpRequired {
  mfa?: boolean;
  max_age?: number;
}

type StepUpHandler = (required: StepUpRequired) => Promise<boolean>;
let stepUpHandler: StepUpHandler | undefined;

/** Interactive sessions re-run the SSO login with step-up on `step_up_required`, then retry once. */
export function onStepUp(handler: StepUpHandler | undefined): void {
  stepUpHandler = handler;
}

function stepUpCommand(required: StepUpRequired): string {
  return `portcullis login --sso --step-up${required.max_age !== undefined ? ` --max-age ${required.max_age}` : ''}`;
}

type Paths = import('../../packages/client/src/index.ts').paths;
type Op<P extends keyof Paths, M extends keyof Paths[P]> = Paths[P][M] & { parameters: { query?: unknown }; requestBody?: { content: { 'application/json': unknown } } };
/** The query of an operation, for a query the CLI builds from its options. */
export type ApiQuery<P extends keyof Paths, M extends keyof Paths[P]> = NonNullable<Op<P, M>['parameters']['query']>;
/** The JSON body of an operation, for a body the CLI builds from its options. */
export type ApiBody<P extends keyof Paths, M extends keyof Paths[P]> = NonNullable<Op<P, M>['requestBody']>['content']['application/json'];

/** A call of the SDK's client (packages/client): `(c) => c.GET('/v1/identities/{id}', { params: { path: { id } } })`. */
export type ApiCall<T> = (client: PortcullisClient) => Promise<{ data?: T; error?: unknown; response: Response }>;

/**
 * One API call through the SDK, with the CLI's address and session (auth: false for the login
 * calls); problems become CliErrors with exit codes, and `step_up_required` re-runs the sign-in
 * (onStepUp) and retries once. The SDK is imported on the first call, not at start-up.
 */
export async function api<T>(request: ApiCall<T>, options: { auth?: boolean; retried?: boolean } = {}): Promise<T> {
  const base = address(); // a bad PORTCULLIS_ADDR is the first thing to report
  const token = options.auth === false ? undefined : sessionToken();
  const { createPortcullisClient, unwrap, PortcullisApiError, PortcullisConnectionError } = await import('../../packages/client/src/index.ts');
  try {
    return await unwrap(request(createPortcullisClient({ baseUrl: base, ...(token !== undefined && { token }) })));
  } catch (err) {
    if (err instanceof PortcullisConnectionError) {
      const cause = err.cause as Error | undefined;
      throw new CliError(`cannot reach Portcullis at ${address()} (${cause?.cause ?? cause?.message}). Is the server running? Start one with \`npm start\`, or set PORTCULLIS_ADDR.`, EXIT.unavailable);
    }
    if (!(err instanceof PortcullisApiError)) throw err;
    const problem: Record<string, unknown> = err.problem ?? (err.oauthError ? { ...err.oauthError } : {});
    const status = err.status;
    if (status === 401 && err.code === 'step_up_required') {
      const required = (problem.required ?? {}) as StepUpRequired;
      if (stepUpHandler && !options.retried && options.auth !== false && (await stepUpHandler(required))) {
        return api(request, { ...options, retried: true });
      }
      throw new CliError(`${err.detail} — run \`${stepUpCommand(required)}\` and try again`, EXIT.unauthenticated, problem);
    }
    const code = status === 401 ? EXIT.unauthenticated : status === 403 ? EXIT.denied : status >= 500 ? EXIT.unavailable : status === 400 || status === 404 || status === 409 ? EXIT.usage : EXIT.failure;
    const hint = status === 401 ? ' — log in again with `portcullis login`' : '';
    throw new CliError(`${status} ${String(problem.code ?? '')}: ${err.detail}${hint}`, code, problem);
  }
}
