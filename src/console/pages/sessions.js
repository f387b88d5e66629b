// Sessions: live and recent gateway sessions (database, SSH, MCP) from GET /v1/sessions, filtered by
// identity, target, gateway and live/ended, each live one with a Terminate button (reason, confirmed).
import { useEffect, useState } from '../vendor/hooks.mjs';
import { get, post, query } from '../api.js';
import { ProblemNote, html, useLoad, when } from '../ui.js';

const STATES = [['', 'live and ended'], ['true', 'live'], ['false', 'ended']];

function Terminate({ s, onDone }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(undefined);
  const rid = `reason-${s.id}`;
  const confirm = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await post(`/v1/sessions/${encodeURIComponent(s.id)}/terminate`, reason ? { reason } : {});
      setOpen(false);
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!open) return html`<button type="button" class="danger" aria-label=${`Terminate ${s.id}`} onClick=${() => setOpen(true)}>Terminate</button>`;
  return html`<form class="confirm" onSubmit=${confirm} aria-label=${`Terminate ${s.id}?`}>
    <label for=${rid}>Reason</label>
    <input id=${rid} maxlength="1024" required value=${reason} onInput=${(e) => setReason(e.currentTarget.value)} />
    <div class="actions">
      <button type="submit" class="danger" disabled=${busy}>End session now</button>
      <button type="button" disabled=${busy} onClick=${() => setOpen(false)}>Cancel</button>
    </div>
    ${error && html`<p class="note" role="alert">${error.message}</p>`}
  </form>`;
}

/** The recording's verification, on demand (each is a session.read decision and a stream verification). */
function VerifyButton({ s }) {
  const [state, setState] = useState(undefined);
  const run = async () => {
    setState('busy');
    try {
      const got = await get(`/v1/sessions/${encodeURIComponent(s.id)}?verify=true`);
      setState(got.verification);
    } catch (err) {
      setState({ error: err });
    }
  };
  if (state === undefined) return html`<button type="button" aria-label=${`Verify the recording of ${s.id}`} onClick=${run}>Verify</button>`;
  if (state === 'busy') return html`<span class="status" role="status">verifying…</span>`;
  if (state.error) return html`<span class="pill deny" role="status">${state.error.status === 403 || state.error.status === 404 ? 'not allowed' : 'error'}</span>`;
  return html`<span class=${`pill ${state.ok ? 'allow' : 'deny'}`} role="status" data-testid="row-verification" title=${state.reason ?? ''}>${state.ok ? `verified (${state.records})` : 'does NOT verify'}</span>`;
}

export function Sessions() {
  const [filter, setFilter] = useState({ identity: '', target: '', gateway: '', live: '', mine: '' });
  const [draft, setDraft] = useState(filter);
  const list = useLoad(() => get(`/v1/sessions${query({ ...filter, limit: 200 })}`), [JSON.stringify(filter)]);
  const gateways = useLoad(() => get('/v1/gateways'), []);
  const submit = (e) => {
    e.preventDefault();
    setFilter(draft);
  };
  const set = (name) => (e) => setDraft({ ...draft, [name]: e.currentTarget.value });
  const sessions = list.data?.sessions ?? [];
  // While a live session is shown, the list refreshes every 5 s (an end recorded on another replica shows up).
  const anyLive = sessions.some((s) => s.live);
  useEffect(() => {
    if (!anyLive) return undefined;
    const t = setInterval(list.reload, 5000);
    return () => clearInterval(t);
  }, [anyLive, JSON.stringify(filter)]);
  return html`<h1>Sessions</h1>
    <form class="filters" role="search" aria-label="Filter sessions" onSubmit=${submit}>
      <label>Identity<input name="identity" value=${draft.identity} onInput=${set('identity')} /></label>
      <label>Target<input name="target" value=${draft.target} onInput=${set('target')} /></label>
      <label>Gateway<select name="gateway" value=${draft.gateway} onChange=${set('gateway')}>
        <option value="">any</option>
        ${(gateways.data?.gateways ?? []).map((g) => html`<option value=${g.name}>${g.name} (${g.kind})</option>`)}
      </select></label>
      <label>State<select name="live" value=${draft.live} onChange=${set('live')}>${STATES.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></label>
      <label class="inline"><input type="checkbox" name="mine" checked=${draft.mine === 'true'} onChange=${(e) => setDraft({ ...draft, mine: e.currentTarget.checked ? 'true' : '' })} /> Only mine</label>
      <button type="submit" class="primary">Apply</button>
      <button type="button" onClick=${list.reload}>Refresh</button>
    </form>
    <${ProblemNote} error=${list.error} what="other people's gateway sessions" />
    ${list.error?.status === 403 && filter.mine !== 'true' && html`<p><button type="button" onClick=${() => { const f = { ...filter, mine: 'true' }; setDraft(f); setFilter(f); }}>Show only my sessions</button></p>`}
    ${list.data && html`<p aria-live="polite" data-testid="count">${sessions.length === 0 ? 'No session matches.' : `${sessions.length} session${sessions.length === 1 ? '' : 's'}, newest first; ${sessions.filter((s) => s.live).length} live.`}</p>`}
    ${sessions.length > 0 && html`<div class="table-wrap"><table class="sessions">
      <caption class="visually-hidden">Gateway sessions</caption>
      <thead><tr><th scope="col">Session</th><th scope="col">State</th><th scope="col">Action</th><th scope="col">Identity</th><th scope="col">Target (gateway)</th><th scope="col">Started</th><th scope="col">Ended</th><th scope="col">Records</th></tr></thead>
      <tbody>${sessions.map((s) => html`<tr key=${s.id} data-session=${s.id}>
        <td><a href=${`#/session/${encodeURIComponent(s.id)}`}>${s.id}</a></td>
        <td><span class=${`pill ${s.live ? 'live' : 'ended'}`}>${s.live ? 'live' : 'ended'}</span></td>
        <td>${s.live ? html`<${Terminate} s=${s} onDone=${list.reload} />` : html`<div class="row-actions"><${VerifyButton} s=${s} />${s.kind === 'ssh' ? html`<a class="button" href=${`/console/replay.html?session=${encodeURIComponent(s.id)}`} aria-label=${`Replay ${s.id}`}>Replay</a>` : ''}</div>`}</td>
        <td>${s.identity}</td><td>${s.target} <span class="status">(${s.gateway}, ${s.kind})</span></td>
        <td><span class="nowrap">${when(s.started_at)}</span></td><td><span class="nowrap">${s.live ? '—' : when(s.ended_at)}</span>${s.end_reason ? html`<br /><span class="status reason">${s.end_reason}</span>` : ''}</td>
        <td>${s.records ?? '—'}</td>
      </tr>`)}</tbody>
    </table></div>`}`;
}
