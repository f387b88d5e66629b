// `portcullis completion`: scripts generated from the command tree; the bash one, loaded into a
// real bash, completes commands, subcommands and options at each level.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const script = (shell: string) => execFileSync(process.execPath, [CLI, 'completion', shell], { encoding: 'utf8' });

/** What the bash completion offers for `words` with the cursor on the last one. */
function complete(bashScript: string, words: string[]): string[] {
  const line = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${bashScript}\nCOMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _portcullis; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('bash completion: commands, subcommands and options of the real command tree', () => {
  const s = script('bash');
  assert.equal(spawnSync('bash', ['-n'], { input: s }).status, 0, 'the script parses');
  assert.deepEqual(complete(s, ['portcullis', 'cre']), ['creds']);
  const top = complete(s, ['portcullis', '']);
  for (const c of ['server', 'login', 'authorize', 'policies', 'audit', 'creds', 'completion']) assert.ok(top.includes(c), c);
  assert.ok(complete(s, ['portcullis', 'creds', '']).includes('issue'));
  assert.ok(complete(s, ['portcullis', 'creds', 'issue', '--']).includes('--reason'));
  assert.ok(complete(s, ['portcullis', 'server', '--']).includes('--config'));
  assert.deepEqual(complete(s, ['portcullis', 'completion', '']), ['bash', 'fish', 'zsh']);
  // Options of a command are offered after an option of it too (the path skips options).
  assert.ok(complete(s, ['portcullis', 'server', '--config', 'x.yaml', '--p']).includes('--port'));
});

test('zsh and fish scripts, and an unknown shell is a usage error', () => {
  assert.match(script('zsh'), /^#compdef portcullis\nautoload -U \+X bashcompinit/);
  const fish = script('fish');
  assert.match(fish, /complete -c portcullis -n '__fish_use_subcommand' -a '[^']*\bcreds\b/);
  assert.match(fish, /__fish_seen_subcommand_from creds; and not __fish_seen_subcommand_from [^']*\bissue\b/);
  const r = spawnSync(process.execPath, [CLI, 'completion', 'tcsh'], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /unknown shell "tcsh": choose bash, zsh or fish/);
});
