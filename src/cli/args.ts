// Helpers shared by the command groups in ./commands.
import { Option } from 'commander';
import { CliError, EXIT } from './client.ts';

/** The `--json` option most commands take. */
export const json = () => new Option('--json', 'machine-readable JSON output');

/** Progress and prompts go to stderr, so stdout stays the command's output. */
export const log = (m: string) => process.stderr.write(`${m}\n`);

export function parseEntity(text: string): { type: string; id: string } {
  const m = /^([A-Z][A-Za-z0-9_]*)::"?([^"]+)"?$/.exec(text);
  if (!m) throw new CliError(`resource must look like Database::orders or Database::"orders", got "${text}"`, EXIT.usage);
  return { type: m[1]!, id: m[2]! };
}
