// The CAEP event types this receiver acts on and Portcullis transmits (OpenID CAEP 1.0), and the
// checks on their payloads.
import { SetRefused } from './set.ts';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

export const EVENT_URI = {
  'session-revoked': `${CAEP}session-revoked`,
  'credential-change': `${CAEP}credential-change`,
  'assurance-level-change': `${CAEP}assurance-level-change`,
  'device-compliance-change': `${CAEP}device-compliance-change`,
} as const;

export type CaepEvent = keyof typeof EVENT_URI;

const BY_URI = new Map<string, CaepEvent>(Object.entries(EVENT_URI).map(([k, v]) => [v, k as CaepEvent]));

/** The CAEP event an event URI names, or undefined (an event type this receiver ignores). */
export function caepEventOf(uri: string): CaepEvent | undefined {
  return BY_URI.get(uri);
}

/** What an event asks of Portcullis. */
export type EventEffect =
  | { kind: 'end_access' }
  | { kind: 'fact'; fact: 'assurance_level' | 'device_compliance'; value: string };

const LEVEL = /^[\x21-\x7e]{1,128}$/;

/** Checks the payload of a known event and says what it asks; SetRefused `invalid_request` when it does not conform. */
export function effectOf(event: CaepEvent, payload: Record<string, unknown>): EventEffect {
  switch (event) {
    case 'session-revoked':
      return { kind: 'end_access' };
    case 'credential-change': {
      if (typeof payload.credential_type !== 'string' || typeof payload.change_type !== 'string') {
        throw new SetRefused('invalid_request', 'credential-change needs credential_type and change_type (CAEP §3.3)');
      }
      return { kind: 'end_access' };
    }
    case 'assurance-level-change': {
      const level = payload.current_level;
      if (typeof level !== 'string' || !LEVEL.test(level)) throw new SetRefused('invalid_request', 'assurance-level-change needs current_level (a short string)');
      return { kind: 'fact', fact: 'assurance_level', value: level };
    }
    case 'device-compliance-change': {
      const status = payload.current_status;
      if (status !== 'compliant' && status !== 'not-compliant') throw new SetRefused('invalid_request', 'device-compliance-change needs current_status "compliant" or "not-compliant"');
      return { kind: 'fact', fact: 'device_compliance', value: status };
    }
  }
}

/** `event_timestamp` of the event (seconds), or the SET's `iat`. */
export function eventTime(payload: Record<string, unknown>, iat: number): number {
  const t = payload.event_timestamp;
  return typeof t === 'number' && Number.isFinite(t) && t > 0 ? Math.floor(t) : iat;
}
