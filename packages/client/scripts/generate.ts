// Regenerates src/generated/openapi.ts from the OpenAPI document of this checkout's server
// (built in memory, no server started). `--check` fails instead when the committed file differs.
//   node packages/client/scripts/generate.ts [--check]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { openapiDocument } from '../../../src/server/openapi-document.ts';

export const GENERATED = join(import.meta.dirname, '..', 'src', 'generated', 'openapi.ts');
const HEADER = '// Generated from the Portcullis OpenAPI document by packages/client/scripts/generate.ts — do not edit.\n// Regenerate with `node packages/client/scripts/generate.ts` after changing a route schema.\n';

/** The generated module's text for the current server. */
export async function generate(): Promise<string> {
  const doc = await openapiDocument();
  const ast = await openapiTS(doc as never, { alphabetize: true });
  return `${HEADER}${astToString(ast)}`;
}

if (import.meta.main) {
  const text = await generate();
  if (process.argv.includes('--check')) {
    if (readFileSync(GENERATED, 'utf8') !== text) {
      process.stderr.write(`${GENERATED} is out of date: run node packages/client/scripts/generate.ts\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(GENERATED, text);
    process.stderr.write(`wrote ${GENERATED}\n`);
  }
}
