// The CLI's one error handler: every failure becomes a line that says what is wrong and what to do,
// and an exit code (client.ts EXIT). A stack trace is printed only with PORTCULLIS_DEBUG=1.
import { CliError, EXIT } from './client.ts';

/** Node's file-system error codes, as a sentence a user can act on. */
const FS_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory — check the path',
  EACCES: 'permission denied — check the file mode and owner',
  EPERM: 'operation not permitted — check the file mode and owner',
  EISDIR: 'it is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
};

/** Turns a file-system error into a CliError naming the path (`what` says which file it was). */
export function fileError(err: unknown, what = 'file', file?: string): CliError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string' || !(e.code in FS_ERRORS)) return undefined;
  const path = e.path ?? (e as { dest?: string }).dest ?? file;
  return new CliError(`cannot open ${what}${path ? ` ${path}` : ''}: ${FS_ERRORS[e.code]}`, e.code === 'ENOSPC' || e.code === 'EMFILE' ? EXIT.failure : EXIT.usage);
}

/** Classifies any thrown value: CliError, PortcullisError (status), file errors, the rest. */
export function describe(err: unknown): { message: string; exitCode: number; problem?: Record<string, unknown> } {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode, ...(err.problem && { problem: err.problem }) };
  const net = err as { code?: unknown; address?: unknown; port?: unknown; gateway?: unknown };
  if (net?.code === 'EADDRINUSE' || net?.code === 'EACCES' && net.port !== undefined) {
    const gw = typeof net.gateway === 'string' ? net.gateway : undefined;
    const where = `${gw !== undefined ? `gateway ${gw}: ` : ''}${String(net.address ?? '')}:${String(net.port ?? '')}`;
    const setting = gw !== undefined ? `the gateway's listen.port in gateways (name: ${gw})` : 'another port (--port, listen.port)';
    return { message: net.code === 'EADDRINUSE' ? `${where} is already in use: stop the other server there, or choose ${setting}` : `no permission to listen on ${where}: use a port above 1023`, exitCode: EXIT.failure };
  }
  const fe = fileError(err);
  if (fe) return { message: fe.message, exitCode: fe.exitCode };
  const e = err as { code?: unknown; status?: unknown; message?: unknown; name?: unknown };
  if (typeof e?.status === 'number' && typeof e.code === 'string' && typeof e.message === 'string') {
    // A PortcullisError (config, store, broker): its message names the field or the state.
    return { message: e.message, exitCode: e.status === 400 ? EXIT.usage : e.status === 503 ? EXIT.unavailable : EXIT.failure };
  }
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  return { message: `${message} (unexpected; run again with PORTCULLIS_DEBUG=1 for details)`, exitCode: EXIT.failure };
}

export function reportError(err: unknown): void {
  const { message, exitCode, problem } = describe(err);
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: message, ...(problem && { problem }) }, null, 2)}\n`);
  else process.stderr.write(`error: ${message}\n`);
  if (process.env.PORTCULLIS_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exitCode = exitCode === EXIT.ok ? EXIT.failure : exitCode;
  // A failure in a long-running command (server, dev) must end the process, not leave it half up.
  if (serving) process.exit(process.exitCode);
}

let serving = false;
/** Long-running commands call this: a later error then exits instead of leaving a half-up server. */
export function markServing(): void {
  serving = true;
}
