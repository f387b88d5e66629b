// `portcullis login` and `portcullis logout`: the saved session.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, EXIT, address, api, clearSession, saveSession } from '../client.ts';
import { fileError } from '../errors.ts';
import { ssoLogin } from '../sso.ts';
import { out } from '../output.ts';
import { json, log } from '../args.ts';

export function register(program: Command): void {
  program
    .command('login')
    .description('sign in: --sso (your organisation\'s identity provider, in a browser or --device), or exchange a proof; the session is saved for later commands')
    .option('--sso', 'human sign-in through the oidc-human trust (browser with a loopback redirect)')
    .option('--device', 'with --sso: the device-code flow, for machines without a browser')
    .option('--step-up', 'with --sso: sign in again now with multi-factor authentication (prompt=login, max_age)')
    .option('--max-age <seconds>', 'with --step-up: how recent the login must be', '300')
    .option('--trust <name>', 'with --sso: which oidc-human trust, when several are configured')
    .option('--login-hint <email>', 'with --sso: pre-fill the account at the provider')
    .option('--redirect-port <port>', 'with --sso: fixed loopback port for the redirect (default: any free port)')
    .option('--token <jwt|->', 'a workload/OIDC token or JWT-SVID; `-` reads it from stdin (a value here is visible to other local users)')
    .option('--token-file <file>', 'read the token from a file')
    .option('--api-key <key|->', 'a Portcullis API key (legacy); `-` reads it from stdin')
    .option('--api-key-file <file>', 'read the API key from a file')
    .option('--bootstrap <secret|->', 'the one-time bootstrap credential; `-` reads it from stdin')
    .option('--bootstrap-file <file>', 'read the bootstrap credential from a file')
    .addOption(json())
    .action(async (o: { sso?: boolean; device?: boolean; stepUp?: boolean; maxAge: string; trust?: string; loginHint?: string; redirectPort?: string; token?: string; tokenFile?: string; apiKey?: string; apiKeyFile?: string; bootstrap?: string; bootstrapFile?: string; json?: boolean }) => {
      const given = [o.token, o.tokenFile, o.apiKey, o.apiKeyFile, o.bootstrap, o.bootstrapFile, o.sso || undefined].filter((x) => x !== undefined);
      if (given.length !== 1) throw new CliError('give exactly one of --sso, --token[-file], --api-key[-file], --bootstrap[-file]', EXIT.usage);
      if (!o.sso && (o.device || o.stepUp || o.trust || o.loginHint || o.redirectPort)) throw new CliError('--device, --step-up, --trust, --login-hint and --redirect-port go with --sso', EXIT.usage);
      if (o.sso) {
        const maxAge = Number(o.maxAge);
        if (!Number.isInteger(maxAge) || maxAge < 0) throw new CliError('--max-age must be a number of seconds', EXIT.usage);
        const port = o.redirectPort === undefined ? undefined : Number(o.redirectPort);
        if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new CliError('--redirect-port must be a port number', EXIT.usage);
        const { login, path } = await ssoLogin({
          ...(o.device && { device: true }),
          ...(o.trust && { trust: o.trust }),
          ...(o.loginHint && { loginHint: o.loginHint }),
          ...(port !== undefined && { port }),
          ...(o.stepUp && { stepUp: { mfa: true, max_age: maxAge } }),
          log,
        });
        out(!!o.json, login, () => `logged in as ${login.identity.id} until ${login.expires_at}${o.stepUp ? ' (stepped up)' : ''}\nsession saved in ${path}`);
        return;
      }
      const body =
        o.token !== undefined || o.tokenFile !== undefined
          ? { token: await secretInput('--token', o.token, o.tokenFile) }
          : o.apiKey !== undefined || o.apiKeyFile !== undefined
            ? { api_key: await secretInput('--api-key', o.apiKey, o.apiKeyFile) }
            : { bootstrap: await secretInput('--bootstrap', o.bootstrap, o.bootstrapFile) };
      const r = await api((c) => c.POST('/v1/auth/token', { body }), { auth: false });
      const path = saveSession({ addr: address(), session_token: r.session_token, expires_at: r.expires_at, identity: r.identity.id });
      out(!!o.json, r, () => `logged in as ${r.identity.id} (${r.identity.kind}, boundary ${r.identity.boundary}) until ${r.expires_at}\nsession saved in ${path}`);
    });

  program.command('logout').description('revoke and forget the saved session').action(async () => {
    try {
      await api((c) => c.POST('/v1/sessions/revoke', { body: { jti: JSON.parse(Buffer.from(process.env.PORTCULLIS_TOKEN ?? sessionPayload(), 'base64url').toString()).jti as string } }));
    } catch {
      /* already expired or server gone: forgetting it is still right */
    }
    clearSession();
    process.stdout.write('logged out\n');
  });
}

function sessionPayload(): string {
  const token = (JSON.parse(readFileSync(resolve(process.env.PORTCULLIS_HOME ?? `${process.env.HOME}/.portcullis`, 'session.json'), 'utf8')) as { session_token: string }).session_token;
  return token.split('.')[1]!;
}

/**
 * A secret for `login`: from a file, from stdin (`-`), or — for compatibility only — the value
 * itself, which every local user can read in /proc/<pid>/cmdline while the command runs.
 */
export async function secretInput(flag: string, value: string | undefined, file: string | undefined): Promise<string> {
  let text: string;
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw fileError(err, `${flag}-file`, file) ?? err;
    }
  } else if (value === '-') {
    if (process.stdin.isTTY) process.stderr.write(`paste the ${flag.slice(2)} and press Enter (Ctrl-D to cancel): `);
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer);
      if (process.stdin.isTTY && String(chunk).includes('\n')) break;
    }
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    log(`warning: ${flag} VALUE puts the secret on the command line, where other local users can read it; use ${flag}-file FILE or ${flag} - (stdin)`);
    text = value ?? '';
  }
  const secret = text.trim();
  if (secret === '') throw new CliError(`${flag}: ${file !== undefined ? `${file} is empty` : value === '-' ? 'nothing on stdin' : 'empty value'} — give the ${flag.slice(2)} itself`, EXIT.usage);
  if (/\s/.test(secret)) throw new CliError(`${flag}: expected one ${flag.slice(2)}, got several words or lines`, EXIT.usage);
  return secret;
}
