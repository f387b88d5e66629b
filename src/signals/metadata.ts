// `/.well-known/ssf-configuration` (SSF 1.0 §7.1): what this installation implements as a
// transmitter and where its receiver endpoint is — nothing it does not do (no stream management
// API: streams are configured in portcullis.yaml).
import type { SignalsConfig } from './config.ts';
import { EVENT_URI } from './events.ts';

export const PUSH_DELIVERY = 'urn:ietf:rfc:8935';
export const RECEIVER_PATH = '/v1/signals/events';

export function ssfConfiguration(issuer: string, config: SignalsConfig | undefined): Record<string, unknown> {
  const transmits = [...new Set((config?.transmitter?.receivers ?? []).flatMap((r) => r.events))];
  return {
    spec_version: '1_0',
    issuer,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    delivery_methods_supported: [PUSH_DELIVERY],
    events_supported: (transmits.length > 0 ? transmits : (['session-revoked', 'credential-change'] as const)).map((e) => EVENT_URI[e]),
    default_subjects: 'ALL',
    ...(config?.receiver && {
      // Portcullis as a receiver (an extension member, so transmitters can be pointed at it).
      receiver: {
        push_endpoint: `${issuer}${RECEIVER_PATH}`,
        events_accepted: Object.values(EVENT_URI),
        authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6750' }],
      },
    }),
  };
}
