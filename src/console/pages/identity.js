// Identity: one identity's facts, owner/sponsor, effective permissions, live leases and grants,
// and suspend/offboard with a reason — each part its own API call, shown only if policy allows.
import { useState } from '../vendor/hooks.mjs';
import { get, post } from '../api.js';
import { ProblemNote, Section, html, useLoad, when } from '../ui.js';

function StatusActions({ identity, onDone }) {
  const [reason, setReason] = useState('');
  const [error, setError] = useState(undefined);
  const act = async (verb) => {
    setError(undefined);
    try {
      await post(`/v1/identities/${encodeURIComponent(identity.id)}/${verb}`, { reason });
      setReason('');
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<form class="status-actions" onSubmit=${(e) => e.preventDefault()}>
    <label for="status-reason">Reason</label>
    <input id="status-reason" value=${reason} maxlength="1024" required onInput=${(e) => setReason(e.currentTarget.value)} />
    <div class="actions">
      ${identity.status !== 'active' && html`<button type="button" onClick=${() => act('activate')}>Activate</button>`}
      ${identity.status === 'active' && html`<button type="button" class="danger" disabled=${!reason} onClick=${() => act('suspend')}>Suspend</button>`}
      ${identity.status !== 'offboarded' && html`<button type="button" class="danger" disabled=${!reason} onClick=${() => act('offboard')}>Offboard</button>`}
    </div>
    ${error && html`<p class="note" role="alert">${error.message}</p>`}
  </form>`;
}

export function IdentityPage({ id }) {
  const enc = encodeURIComponent(id);
  const one = useLoad(() => get(`/v1/identities/${enc}`), [id]);
  const perms = useLoad(() => get(`/v1/identities/${enc}/permissions`), [id]);
  const leases = useLoad(() => get(`/v1/leases?identity=${enc}&status=active`), [id]);
  const grants = useLoad(() => get(`/v1/grants?identity=${enc}&active=true`), [id]);
  const i = one.data;
  return html`<h1>${id}</h1>
    <${ProblemNote} error=${one.error} what="this identity" />
    ${i && html`<dl class="facts">
      <dt>Kind</dt><dd>${i.kind}</dd><dt>Status</dt><dd><span class=${`pill ${i.status}`}>${i.status}</span></dd>
      <dt>Owner</dt><dd>${i.owner ?? '—'}</dd><dt>Purpose</dt><dd>${i.purpose ?? '—'}</dd>
      <dt>Boundary</dt><dd>${i.boundary} / ${i.environment}</dd><dt>Last used</dt><dd>${when(i.last_authenticated_at)}</dd>
    </dl>
    <${Section} title="Suspend or offboard" id="status"><${StatusActions} identity=${i} onDone=${one.reload} /><//>`}
    <${Section} title="Effective permissions" id="perms">
      <${ProblemNote} error=${perms.error} what="the permissions" />
      ${perms.data && (perms.data.permissions.length === 0 ? html`<p class="empty">No permission.</p>` : html`<ul>${perms.data.permissions.map((p) => html`<li>${p.action} on ${p.resource.type}::${p.resource.id} <small>(${p.status}; ${p.permits.map((x) => x.policy).join(', ')})</small></li>`)}</ul>`)}
    <//>
    <${Section} title="Live leases" id="leases">
      <${ProblemNote} error=${leases.error} what="leases" />
      ${leases.data && (leases.data.leases.length === 0 ? html`<p class="empty">No live lease.</p>` : html`<ul>${leases.data.leases.map((l) => html`<li>${l.target} (${l.permission}) until ${when(l.expires_at)}</li>`)}</ul>`)}
    <//>
    <${Section} title="Grants in force" id="grants">
      <${ProblemNote} error=${grants.error} what="grants" />
      ${grants.data && (grants.data.grants.length === 0 ? html`<p class="empty">No grant in force.</p>` : html`<ul>${grants.data.grants.map((g) => html`<li>${g.what} (${g.kind}): ${g.status_line}</li>`)}</ul>`)}
    <//>`;
}
