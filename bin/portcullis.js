#!/usr/bin/env node
// The `portcullis` command. Portcullis runs TypeScript directly and needs Node >= 24;
// when started by an older Node, re-run under the Node 24 that `npm install` brought.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'src', 'cli', 'main.ts');
const major = Number(process.versions.node.split('.')[0]);
const args = process.argv.slice(2);

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // Needs nothing else: answered without loading (or type-stripping) any of the CLI.
  process.stdout.write(`${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}\n`);
} else if (major >= 24) {
  // Node's compile cache keeps the type-stripped, compiled modules between runs (in the OS temp dir).
  module.enableCompileCache?.();
  await import(main);
} else {
  const bundled = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bundled)) {
    console.error(`portcullis needs Node >= 24 (this is ${process.version}); run \`npm install\` in ${root} first.`);
    process.exit(2);
  }
  // Signals go on to the child (a supervisor's SIGTERM must stop the server, not orphan it).
  const child = spawn(bundled, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}
