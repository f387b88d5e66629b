// The repository's shell scripts pass shellcheck and the YAML in deploy/ passes yamllint
// (deploy/.yamllint), both Debian's. Unverified here: deploy/Dockerfile (no hadolint) and the
// Helm templates (Go templates; no helm) — see docs/deployment.md, "What was checked".
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { missingDependency } from '../ci.ts';

const REPO = join(import.meta.dirname, '..', '..');
const has = (bin: string) => spawnSync(bin, ['--version'], { encoding: 'utf8' }).status === 0;
const shellcheckMissing = has('shellcheck') ? undefined : missingDependency('shellcheck', 'apt-get install shellcheck');
const yamllintMissing = has('yamllint') ? undefined : missingDependency('yamllint', 'apt-get install yamllint');

/** Every shell script of the repository: *.sh, or a file starting with a sh/bash shebang (node_modules, .git and data aside). */
function shellScripts(dir = REPO): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return ['node_modules', '.git', 'data', '.portcullis'].includes(e.name) ? [] : shellScripts(path);
    if (!e.isFile()) return [];
    if (e.name.endsWith('.sh')) return [path];
    const head = readFileSync(path).subarray(0, 64).toString('latin1');
    return /^#!\s*\/(usr\/)?bin\/(env\s+)?(ba|da)?sh\b/.test(head) ? [path] : [];
  });
}

const run = (bin: string, args: string[]) => spawnSync(bin, args, { cwd: REPO, encoding: 'utf8' });

describe('shellcheck: every shell script', { skip: shellcheckMissing }, () => {
  it('finds the scripts (pep-token.sh, .ci/run) and each is clean', () => {
    const scripts = shellScripts().map((f) => relative(REPO, f)).sort();
    for (const f of ['.ci/run', 'examples/authzen-todo/pep-token.sh']) assert.ok(scripts.includes(f), `${f} is checked`);
    const r = run('shellcheck', ['--external-sources', '--format=gcc', ...scripts]);
    assert.equal(r.status, 0, `shellcheck:\n${r.stdout}${r.stderr}`);
  });

  it('reports a real mistake (the check can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcx-sc-'));
    try {
      writeFileSync(join(dir, 'bad.sh'), '#!/bin/sh\nrm -rf $1/*\n');
      const r = run('shellcheck', ['--format=gcc', join(dir, 'bad.sh')]);
      assert.notEqual(r.status, 0);
      assert.match(r.stdout, /SC2086/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('yamllint: deploy/ (deploy/.yamllint; Helm templates excluded)', { skip: yamllintMissing }, () => {
  it('is clean, warnings included', () => {
    const r = run('yamllint', ['--strict', '-c', 'deploy/.yamllint', '-f', 'parsable', 'deploy/']);
    assert.equal(r.status, 0, `yamllint:\n${r.stdout}${r.stderr}`);
  });

  it('reports a real mistake (the check can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcx-yl-'));
    try {
      writeFileSync(join(dir, 'bad.yaml'), 'a: 1\na: 2\n');
      const r = run('yamllint', ['-c', 'deploy/.yamllint', '-f', 'parsable', join(dir, 'bad.yaml')]);
      assert.notEqual(r.status, 0);
      assert.match(r.stdout, /duplication of key "a"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
