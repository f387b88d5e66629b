// Audit: the streams (authn, authz, admin, session) newest first with filters (identity, decision,
// boundary, type, time range), live follow (polling for what came after), chain and witness
// verification at a glance (GET /v1/audit/verify), and an export of the filtered view as JSON lines.
import { useEffect, useRef, useState } from '../vendor/hooks.mjs';
import { ApiError, get, query } from '../api.js';
import { ProblemNote, html, useLoad, when } from '../ui.js';

const STREAMS = ['authz', 'admin', 'authn', 'session'];
const PAGE = 100;
const FOLLOW_MS = 2000;

/** A datetime-local value (the browser's local time) as RFC 3339, or undefined. */
function iso(local) {
  if (!local) return undefined;
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
}

function filterQuery(f) {
  return { identity: f.identity, decision: f.decision, boundary: f.boundary, type: f.type, since: iso(f.since), until: iso(f.until) };
}

/** A record in a line: the action and resource of a decision, else the payload's most telling fields. */
function summary(r) {
  const p = r.payload ?? {};
  const res = typeof p.resource === 'string' ? p.resource : p.resource && typeof p.resource === 'object' ? `${p.resource.type}::"${p.resource.id}"` : '';
  const bits = [p.action, res, p.reason, p.statement, p.command, p.gateway_session].filter((x) => typeof x === 'string' && x !== '');
  if (Array.isArray(p.reasons) && p.reasons.length) bits.push(`(policies: ${p.reasons.join(', ')})`);
  if (typeof p.refused === 'string') bits.push(`(refused: ${p.refused})`);
  return bits.join(' ').slice(0, 240);
}

function VerifyStatus() {
  const v = useLoad(() => get('/v1/audit/verify'), []);
  if (v.error) return html`<${ProblemNote} error=${v.error} what="the audit verification" />`;
  if (!v.data) return html`<p class="status" role="status">Verifying the audit chains…</p>`;
  const d = v.data;
  return html`<section aria-labelledby="verify-h" class="verify-panel">
    <h2 id="verify-h">Verification <button type="button" onClick=${v.reload} disabled=${v.loading}>Verify again</button></h2>
    <p class=${`verify ${d.ok ? 'ok' : 'bad'}`} data-testid="audit-verification" role="status">${d.ok ? 'All streams verify' : 'Verification FAILED'}${d.witness ? `; witness ${d.witness.source}: ${d.witness.ok ? `ok (${d.witness.checkpoints} checkpoints)` : `failed${d.witness.reason ? ` (${d.witness.reason})` : ''}`}` : '; no witness configured'}.</p>
    <ul class="chips">${d.streams.map((s) => html`<li key=${s.stream} class=${`chip ${s.ok ? 'ok' : 'bad'}`} data-stream=${s.stream}>
      <strong>${s.stream}</strong> ${s.ok ? 'chain ok' : `broken at ${s.first_bad_seq ?? '?'}${s.reason ? `: ${s.reason}` : ''}`}; ${s.events} events; signed through ${s.signed_through}/${s.last_seq}${s.witnessed_through !== undefined ? `; witnessed through ${s.witnessed_through}` : ''}
    </li>`)}</ul>
  </section>`;
}

export function Audit() {
  const [stream, setStream] = useState('authz');
  const [filter, setFilter] = useState({ identity: '', decision: '', boundary: '', type: '', since: '', until: '' });
  const [draft, setDraft] = useState(filter);
  const [follow, setFollow] = useState(false);
  const [fresh, setFresh] = useState([]);
  const [exportError, setExportError] = useState(undefined);
  const list = useLoad(() => get(`/v1/audit/${stream}${query({ ...filterQuery(filter), order: 'desc', limit: PAGE })}`), [stream, JSON.stringify(filter)]);
  const events = [...fresh, ...(list.data?.events ?? [])];
  const newest = useRef(0);
  newest.current = events.reduce((m, e) => Math.max(m, e.seq), 0);
  useEffect(() => setFresh([]), [stream, JSON.stringify(filter), list.data]);
  // Live follow: ask for what came after the newest shown, every 2 s, while the box is ticked.
  useEffect(() => {
    if (!follow || !list.data) return undefined;
    let live = true;
    const t = setInterval(async () => {
      try {
        const got = await get(`/v1/audit/${stream}${query({ ...filterQuery(filter), after: newest.current, limit: PAGE })}`);
        if (live && got.events.length) setFresh((f) => [...got.events.slice().reverse(), ...f].slice(0, 1000));
      } catch {
        /* the next tick tries again */
      }
    }, FOLLOW_MS);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [follow, stream, JSON.stringify(filter), list.data]);
  const submit = (e) => {
    e.preventDefault();
    setFilter(draft);
  };
  const set = (name) => (e) => setDraft({ ...draft, [name]: e.currentTarget.value });
  // Export: the server's JSON lines of the whole filtered view (not only the page shown), as a download.
  const exportLines = async () => {
    setExportError(undefined);
    try {
      const res = await fetch(`/v1/audit/${stream}${query({ ...filterQuery(filter), format: 'ndjson' })}`, { headers: { accept: 'application/x-ndjson', 'x-portcullis-console': '1' }, credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => undefined));
      const url = URL.createObjectURL(new globalThis.Blob([await res.text()], { type: 'application/x-ndjson' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `audit-${stream}-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setExportError(err);
    }
  };
  return html`<h1>Audit</h1>
    <${VerifyStatus} />
    <h2 id="events-h">Events</h2>
    <form class="filters" role="search" aria-label="Filter audit events" onSubmit=${submit}>
      <label>Stream<select name="stream" value=${stream} onChange=${(e) => setStream(e.currentTarget.value)}>${STREAMS.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Identity<input name="identity" value=${draft.identity} onInput=${set('identity')} /></label>
      <label>Decision<select name="decision" value=${draft.decision} onChange=${set('decision')}><option value="">any</option><option value="allow">allow</option><option value="deny">deny</option></select></label>
      <label>Boundary<input name="boundary" value=${draft.boundary} onInput=${set('boundary')} /></label>
      <label>Type<input name="type" value=${draft.type} onInput=${set('type')} /></label>
      <label>From<input name="since" type="datetime-local" step="1" value=${draft.since} onInput=${set('since')} /></label>
      <label>Until<input name="until" type="datetime-local" step="1" value=${draft.until} onInput=${set('until')} /></label>
      <button type="submit" class="primary">Apply</button>
    </form>
    <div class="actions">
      <label class="inline"><input type="checkbox" name="follow" checked=${follow} onChange=${(e) => setFollow(e.currentTarget.checked)} /> Live follow</label>
      <button type="button" onClick=${exportLines}>Export JSON lines</button>
    </div>
    ${exportError && html`<p class="note" role="alert">Export failed: ${exportError.message}</p>`}
    <${ProblemNote} error=${list.error} what=${`the ${stream} stream`} />
    ${list.data && html`<p aria-live="polite" data-testid="count">${events.length === 0 ? 'No event matches.' : `${events.length} event${events.length === 1 ? '' : 's'}, newest first${events.length >= PAGE ? ' (the newest shown; export for all)' : ''}.`}</p>`}
    ${events.length > 0 && html`<div class="table-wrap"><table class="audit" aria-labelledby="events-h">
      <thead><tr><th scope="col">Seq</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Actor</th><th scope="col">Subject</th><th scope="col">Boundary</th><th scope="col">Decision</th><th scope="col">Summary</th></tr></thead>
      <tbody>${events.map((r) => html`<tr key=${r.seq} data-seq=${r.seq} data-decision=${r.decision ?? ''}>
        <td>${r.seq}</td><td>${when(r.time)}</td><td>${r.type}</td><td>${r.actor}</td><td>${r.subject ?? '—'}</td><td>${r.boundary ?? '—'}</td>
        <td>${r.decision ? html`<span class=${`pill ${r.decision}`}>${r.decision}</span>` : '—'}</td>
        <td class="what">${summary(r)}${typeof r.payload?.decision_id === 'string' ? html`<br /><span class="ids status">decision ${r.payload.decision_id}</span>` : ''}</td>
      </tr>`)}</tbody>
    </table></div>`}`;
}
