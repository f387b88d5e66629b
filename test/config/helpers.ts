// Config test helpers: the field a config error names.
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import { InvalidInput } from '../../src/common/errors.ts';

/** Parses `yaml` (relative paths from `dir`) expecting a config error; returns the field it names. */
export function configFieldOf(yaml: string, dir: string): string {
  try {
    parseConfig(yaml, dir);
  } catch (e) {
    assert.ok(e instanceof InvalidInput, String(e));
    return String(e.extra.field);
  }
  assert.fail('expected a config error');
}
