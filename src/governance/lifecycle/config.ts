// The `lifecycle:` section of portcullis.yaml: rotation periods per credential kind, what happens
// to the identities of an offboarded owner, and when idle identities are offboarded.
import { duration, oneOf, section, text, z } from '../../common/validation.ts';

const DAY = 86_400_000;

export const LIFECYCLE_CONFIG = section({
  rotation: section({
    /** API keys: due at their own `rotate_by` (apikeys.rotation); this only overrides the report's period. */
    apikey: duration({ min: DAY }).optional(),
    signing_keys: duration({ min: DAY }).optional(),
    ssh_ca: duration({ min: DAY }).optional(),
    spiffe_ca: duration({ min: DAY }).optional(),
    /** Signing key purposes Portcullis rotates itself when due (session, token, audit). */
    auto_rotate: z.array(oneOf(['session', 'token', 'audit'])).optional(),
  }).optional(),
  offboarding: section({
    /** What happens to an offboarded owner's identities: reassigned to the successor, suspended, or only flagged. */
    owned: oneOf(['reassign', 'suspend', 'flag']).optional(),
    /** The successor when none is named at offboarding (e.g. a team). */
    successor: text({ max: 256 }).optional(),
  }).optional(),
  stale: section({
    idle: duration({ min: DAY }),
    grace: duration({ min: 0 }).optional(),
    action: oneOf(['suspend', 'offboard']).optional(),
  }).optional(),
});

export interface LifecycleConfig {
  rotation: { apikey_ms?: number; signing_keys_ms: number; ssh_ca_ms: number; spiffe_ca_ms: number; auto_rotate: ('session' | 'token' | 'audit')[] };
  offboarding: { owned: 'reassign' | 'suspend' | 'flag'; successor?: string };
  /** Absent: idle identities are reported (findings), never offboarded. */
  stale?: { idle_ms: number; grace_ms: number; action: 'suspend' | 'offboard' };
}

export function resolveLifecycleConfig(f: z.output<typeof LIFECYCLE_CONFIG> | undefined): LifecycleConfig {
  const r = f?.rotation;
  return {
    rotation: {
      ...(r?.apikey !== undefined && { apikey_ms: r.apikey }),
      signing_keys_ms: r?.signing_keys ?? 90 * DAY,
      ssh_ca_ms: r?.ssh_ca ?? 365 * DAY,
      spiffe_ca_ms: r?.spiffe_ca ?? 365 * DAY,
      auto_rotate: r?.auto_rotate ?? [],
    },
    offboarding: { owned: f?.offboarding?.owned ?? 'reassign', ...(f?.offboarding?.successor !== undefined && { successor: f.offboarding.successor }) },
    ...(f?.stale && { stale: { idle_ms: f.stale.idle, grace_ms: f.stale.grace ?? 14 * DAY, action: f.stale.action ?? 'offboard' } }),
  };
}
