// The SSH replay page: a session's records (GET /v1/sessions/{id}?verify=true, a session.read
// decision, audited) rebuilt into asciicast v2 per interactive channel (as src/gateways/ssh/recorder.ts
// asciicast() does) and played with asciinema-player, served from node_modules (no CDN).
import { ApiError, get } from './api.js';

const $ = (id) => document.getElementById(id);

/** The cast of one pty channel: its header (from ssh.channel) and its output events, in order. */
export function asciicast(records, channel) {
  const start = records.find((r) => r.type === 'ssh.channel' && r.payload?.cast !== undefined && r.payload.channel === channel);
  if (!start) return undefined;
  const lines = [JSON.stringify(start.payload.cast)];
  for (const r of records) if (r.type === 'ssh.output' && r.payload?.channel === channel && Array.isArray(r.payload.events)) for (const e of r.payload.events) lines.push(JSON.stringify(e));
  return `${lines.join('\n')}\n`;
}

function say(text, alert) {
  const m = $('meta');
  m.textContent = text;
  if (alert) m.setAttribute('role', 'alert');
}

let player;
function play(records, channel) {
  const cast = asciicast(records, channel);
  player?.dispose?.();
  $('player').replaceChildren();
  player = globalThis.AsciinemaPlayer.create({ data: cast }, $('player'), { autoPlay: true, idleTimeLimit: 2, fit: 'width', controls: true, terminalFontFamily: 'ui-monospace, Menlo, Consolas, monospace' });
}

async function main() {
  const id = new URLSearchParams(location.search).get('session') ?? '';
  if (!/^gws_[A-Za-z0-9_-]{1,60}$/.test(id)) return say('No session named (…/replay.html?session=gws_…).', true);
  $('links').replaceChildren(Object.assign(document.createElement('a'), { href: `/console/#/session/${encodeURIComponent(id)}`, textContent: 'The session’s timeline and decisions' }));
  let got;
  try {
    got = await get(`/v1/sessions/${encodeURIComponent(id)}?verify=true`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      say('Sign in to the console first.', true);
      $('links').replaceChildren(Object.assign(document.createElement('a'), { href: '/console/', textContent: 'Sign in' }));
      return undefined;
    }
    return say(err instanceof ApiError && (err.status === 403 || err.status === 404) ? 'You may not see this session.' : `Could not load the session: ${err.message}`, true);
  }
  const s = got.session;
  say(`${s.id}: ${s.identity} on ${s.target} through ${s.gateway}, started ${s.started_at}${s.live ? ' (live: the recording so far)' : `, ended ${s.ended_at ?? ''}${s.end_reason ? ` — ${s.end_reason}` : ''}`}.`);
  const v = got.verification;
  if (v) {
    const el = $('verification');
    el.hidden = false;
    el.classList.add(v.ok ? 'ok' : 'bad');
    el.textContent = `${v.ok ? 'Recording verifies' : 'Recording does NOT verify'}: ${v.records} records${v.complete ? ', complete' : ', still open'}${v.reason ? `; ${v.reason}` : ''}.`;
  }
  const channels = got.records.filter((r) => r.type === 'ssh.channel' && r.payload?.cast !== undefined).map((r) => r.payload.channel);
  if (channels.length === 0) return say(`${$('meta').textContent} No interactive (pty) channel was recorded in this session: nothing to replay.`);
  if (typeof globalThis.AsciinemaPlayer?.create !== 'function') return say('The player did not load.', true);
  if (channels.length > 1) {
    const sel = $('channel');
    sel.replaceChildren(...channels.map((c) => Object.assign(document.createElement('option'), { value: String(c), textContent: `channel ${c}` })));
    sel.addEventListener('change', () => play(got.records, Number(sel.value)));
    $('channels').hidden = false;
  }
  play(got.records, channels[0]);
  return undefined;
}

void main();
