// The `portcullis` command: a thin adapter over the HTTP API (and the broker, for `server`/`dev`).
// Each command group lives in ./commands and registers itself here, in the order `--help` lists them.
import { Command } from 'commander';
import { PortcullisError } from '../common/errors.ts';
import { CliError, EXIT, onStepUp } from './client.ts';
import { interactive, ssoLogin } from './sso.ts';
import { printJson } from './output.ts';
import { log } from './args.ts';
import * as server from './commands/server.ts';
import * as login from './commands/login.ts';
import * as authorize from './commands/authorize.ts';
import * as identities from './commands/identities.ts';
import * as apikeys from './commands/apikeys.ts';
import * as policies from './commands/policies.ts';
import * as audit from './commands/audit.ts';
import * as credentials from './commands/credentials.ts';
import * as access from './commands/access.ts';
import * as keys from './commands/keys.ts';
import * as findings from './commands/findings.ts';

const program = new Command('portcullis')
  .description('Portcullis — prove who is asking, decide with Cedar at request time, record everything.')
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions()
  .version('0.1.0');

for (const group of [server, login, authorize, identities, findings, apikeys, policies, audit, credentials, access, keys]) group.register(program);

// At a terminal, a step_up_required answer re-runs the SSO login with MFA and retries the call.
if (interactive() && !process.argv.includes('--json') && !process.env.PORTCULLIS_TOKEN) {
  onStepUp(async (required) => {
    log(`This needs a fresh sign-in${required.mfa ? ' with multi-factor authentication' : ''}.`);
    await ssoLogin({ stepUp: { mfa: required.mfa ?? false, ...(required.max_age !== undefined && { max_age: required.max_age }) }, log });
    return true;
  });
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const wantsJson = process.argv.includes('--json');
  if (err instanceof CliError) {
    if (wantsJson) printJson({ error: err.message, ...(err.problem && { problem: err.problem }) });
    else process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof PortcullisError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.status === 400 ? EXIT.usage : EXIT.failure;
  } else {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exitCode = EXIT.failure;
  }
}
