// Dependencies the suite needs from the machine (sshd, Cedar's conformance data): on a laptop a
// missing one skips its tests with a notice; in CI (CI set, as .ci/run and CI services do) it is
// a failing test, so a CI run can never go green by skipping them.
import { test } from 'node:test';
import assert from 'node:assert/strict';

export const inCi = ((v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false')(process.env.CI);

/**
 * Call at module level when `dependency` is missing. Returns the `skip` reason for the tests that
 * need it; in CI also registers a test that fails, naming what to install.
 */
export function missingDependency(dependency: string, howToGet: string): string {
  if (inCi) {
    test(`${dependency} is available (required in CI)`, () => {
      assert.fail(`CI is set but ${dependency} is missing: ${howToGet}`);
    });
  } else {
    console.log(`# NOTICE: ${dependency} missing — its tests are SKIPPED (${howToGet}; in CI this fails)`);
  }
  return `${dependency} missing`;
}
