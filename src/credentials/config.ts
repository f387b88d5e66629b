// Validates the `targets:` section of portcullis.yaml: each entry by the schema of its kind's
// plug-in (issuers/registry.ts), names unique. Every error names the offending path
// (`targets[0].permissions.readonly`). Secrets are never accepted inline.
import { validateConfig, z } from '../common/validation.ts';
import { ISSUERS } from './issuers/registry.ts';
import type { TargetConfig } from './issuers/registry.ts';

export type { TargetConfig, TargetKind } from './issuers/registry.ts';
export type { OnRevoke, PostgresTarget } from './issuers/postgres/config.ts';
export type { SshTarget } from './issuers/ssh/config.ts';
export type { ApiTarget } from './issuers/api/config.ts';
export type { SpiffeX509Target } from './issuers/spiffe-x509/config.ts';

/** One `targets[i]` entry: its `kind` chooses the plug-in schema. */
const TARGET = z.discriminatedUnion('kind', ISSUERS.map((p) => p.config) as never) as unknown as z.ZodType<TargetConfig>;

/** The `targets:` list. */
export const TARGETS = z
  .array(TARGET)
  .superRefine((targets, ctx) => {
    const seen = new Set<string>();
    targets.forEach((t, i) => {
      if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate target name "${t.name}"` });
      seen.add(t.name);
    });
  });

export function validateTargets(raw: unknown[]): TargetConfig[] {
  return validateConfig(TARGETS, raw, 'targets');
}
