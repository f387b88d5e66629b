// The `portcullis` command: a thin adapter over the HTTP API (and the broker, for `server`/`dev`).
// Each command group lives in ./commands and registers itself here, in the order `--help` lists them.
// Start-up is kept small: registering a group imports only commander and the HTTP client; what a
// command needs beyond that (the broker, Fastify, jose, Cedar, the audit verifier) is imported
// inside its action, so `--version` or `authorize` never load them.
import { Command } from 'commander';
import { EXIT, onStepUp } from './client.ts';
import { reportError } from './errors.ts';
import { log } from './args.ts';
import { groupsFor } from './groups.ts';
// Nothing escapes as a stack trace: every error, thrown or rejected anywhere, ends here.
process.on('uncaughtException', (err) => reportError(err));
process.on('unhandledRejection', (err) => reportError(err));
// A command whose work never settles (a promise nobody resolves) would otherwise end with exit 0.
let settled = false;
process.on('beforeExit', () => {
  if (!settled) {
    settled = true;
    reportError(new Error('the command stopped before it finished (nothing left to wait for) — this is a bug; PORTCULLIS_DEBUG=1 shows more'));
  }
});

try {
  const program = new Command('portcullis')
    .description('Portcullis — prove who is asking, decide with Cedar at request time, record everything.')
    .showHelpAfterError('(run with --help for usage)')
    .enablePositionalOptions()
    .exitOverride()
    .version('0.1.0');

  for (const group of groupsFor(process.argv.slice(2))) (await group.load()).register(program);

  // At a terminal, a step_up_required answer re-runs the SSO login with MFA and retries the call.
  const { interactive } = await import('./sso.ts');
  if (interactive() && !process.argv.includes('--json') && !process.env.PORTCULLIS_TOKEN) {
    onStepUp(async (required) => {
      const { ssoLogin } = await import('./sso.ts');
      log(`This needs a fresh sign-in${required.mfa ? ' with multi-factor authentication' : ''}.`);
      await ssoLogin({ stepUp: { mfa: required.mfa ?? false, ...(required.max_age !== undefined && { max_age: required.max_age }) }, log });
      return true;
    });
  }

  await program.parseAsync(process.argv);
  settled = true;
} catch (err) {
  settled = true;
  // commander already printed its usage message (exitOverride throws instead of exiting).
  const c = err as { code?: string; exitCode?: number };
  if (typeof c.code === 'string' && c.code.startsWith('commander.')) {
    process.exitCode = c.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    reportError(err);
  }
}
