// Approvals: the requests I can act on (requester, scope, reason, matching rule, approvals so far,
// approve/deny with a comment), break-glass in progress with its timer and "end now", reviews due.
import { useState } from '../vendor/hooks.mjs';
import { get, post } from '../api.js';
import { ProblemNote, Section, html, remaining, useLoad, useNow, when } from '../ui.js';

function RequestCard({ r, onDone }) {
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(undefined);
  const approvals = r.reviews.filter((v) => v.verdict === 'approve');
  const act = async (verb) => {
    setBusy(true);
    setError(undefined);
    try {
      await post(`/v1/access-requests/${encodeURIComponent(r.id)}/${verb}`, comment ? { comment } : {});
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const cid = `comment-${r.id}`;
  return html`<li class="card" data-request=${r.id}>
    <h3>${r.what}</h3>
    <dl>
      <dt>Requester</dt><dd>${r.requester}</dd>
      <dt>Reason</dt><dd>${r.reason}${r.ticket ? ` (${r.ticket})` : ''}</dd>
      <dt>Matching rule</dt><dd>${r.rules.join(', ') || '—'}</dd>
      <dt>Approvals</dt><dd data-testid="approvals">${approvals.length} of ${r.required_approvals}${approvals.length ? ` (${approvals.map((a) => a.reviewer).join(', ')})` : ''}</dd>
      <dt>For</dt><dd>${Math.round(r.duration_ms / 60000)} min; asked ${when(r.created_at)}; expires ${when(r.expires_at)}</dd>
    </dl>
    <p class="status">${r.status_line}</p>
    <label for=${cid}>Comment</label>
    <textarea id=${cid} rows="2" maxlength="2000" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea>
    <div class="actions">
      <button type="button" class="primary" disabled=${busy} onClick=${() => act('approve')}>Approve</button>
      <button type="button" class="danger" disabled=${busy} onClick=${() => act('deny')}>Deny</button>
    </div>
    ${error && html`<p class="note" role="alert">${error.message}</p>`}
  </li>`;
}

function BreakGlass({ g, onDone, now }) {
  const [error, setError] = useState(undefined);
  const end = async () => {
    try {
      await post(`/v1/break-glass/${encodeURIComponent(g.id)}/end`, { reason: 'ended from the console' });
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<li class="card urgent" data-grant=${g.id}>
    <h3>${g.identity_id}: ${g.what}</h3>
    <p>${g.reason}</p>
    <p class="status">${g.status_line}</p>
    <p class="timer" aria-live="off">Ends in <strong data-testid="timer">${remaining(g.end_at, now)}</strong> (at ${when(g.end_at)})</p>
    <button type="button" class="danger" onClick=${end}>End now</button>
    ${error && html`<p class="note" role="alert">${error.message}</p>`}
  </li>`;
}

export function Approvals() {
  const now = useNow();
  const inbox = useLoad(() => get('/v1/access-requests?reviewable=true&status=pending'), []);
  const glass = useLoad(() => get('/v1/grants?all=true&active=true'), []);
  const reviews = useLoad(() => get('/v1/break-glass/reviews?status=open'), []);
  const requests = inbox.data?.requests ?? [];
  const breakGlass = (glass.data?.grants ?? []).filter((g) => g.kind === 'break-glass');
  const due = reviews.data?.reviews ?? [];
  return html`<h1>Approvals</h1>
    <${Section} title="Waiting for me" id="inbox">
      <${ProblemNote} error=${inbox.error} what="access requests" />
      ${inbox.loading && !inbox.data ? html`<p>Loading…</p>` : requests.length === 0 && !inbox.error ? html`<p class="empty">Nothing waits for your approval.</p>` : html`<ul class="cards">${requests.map((r) => html`<${RequestCard} key=${r.id} r=${r} onDone=${inbox.reload} />`)}</ul>`}
    <//>
    <${Section} title="Break-glass in progress" id="breakglass">
      <${ProblemNote} error=${glass.error} what="break-glass grants" />
      ${breakGlass.length === 0 && !glass.error ? html`<p class="empty">No break-glass is in progress.</p>` : html`<ul class="cards">${breakGlass.map((g) => html`<${BreakGlass} key=${g.id} g=${g} now=${now} onDone=${glass.reload} />`)}</ul>`}
    <//>
    <${Section} title="After-action reviews due" id="reviews">
      <${ProblemNote} error=${reviews.error} what="break-glass reviews" />
      ${due.length === 0 && !reviews.error ? html`<p class="empty">No review is due.</p>` : html`<ul>${due.map((v) => html`<li key=${v.id}>${v.user}: break-glass grant ${v.grant_id}, ended; opened ${when(v.opened_at)}</li>`)}</ul>`}
    <//>`;
}
