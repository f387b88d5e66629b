// Inventory: who exists, who owns them, boundary and environment, last used, status — searched,
// filtered and paged by the server (GET /v1/identities?limit&after), so 100k identities stay fast.
import { useState } from '../vendor/hooks.mjs';
import { get, query } from '../api.js';
import { ProblemNote, html, useLoad, when } from '../ui.js';

const PAGE = 50;
const KINDS = ['', 'workload', 'agent', 'service-account', 'user'];
const STATUSES = ['', 'active', 'suspended', 'offboarded'];

export function Inventory() {
  const [filter, setFilter] = useState({ q: '', kind: '', boundary: '', environment: '', status: '' });
  const [draft, setDraft] = useState(filter);
  // The cursors of the pages before this one (Back pops one).
  const [cursors, setCursors] = useState([]);
  const after = cursors[cursors.length - 1];
  const list = useLoad(() => get(`/v1/identities${query({ ...filter, limit: PAGE, after })}`), [JSON.stringify(filter), after]);
  const submit = (e) => {
    e.preventDefault();
    setFilter(draft);
    setCursors([]);
  };
  const field = (name, label, options) => html`<label>${label}
    ${options
      ? html`<select name=${name} value=${draft[name]} onChange=${(e) => setDraft({ ...draft, [name]: e.currentTarget.value })}>${options.map((o) => html`<option value=${o}>${o || 'any'}</option>`)}</select>`
      : html`<input name=${name} type=${name === 'q' ? 'search' : 'text'} value=${draft[name]} onInput=${(e) => setDraft({ ...draft, [name]: e.currentTarget.value })} />`}
  </label>`;
  const page = list.data;
  const first = cursors.length * PAGE + 1;
  return html`<h1>Inventory</h1>
    <form class="filters" role="search" onSubmit=${submit}>
      ${field('q', 'Search')}${field('kind', 'Kind', KINDS)}${field('boundary', 'Boundary')}${field('environment', 'Environment')}${field('status', 'Status', STATUSES)}
      <button type="submit" class="primary">Apply</button>
    </form>
    <${ProblemNote} error=${list.error} what="the inventory" />
    ${page && html`<p aria-live="polite" data-testid="count">${page.total === 0 ? 'No identity matches.' : `${first}–${first + page.identities.length - 1} of ${page.total}`}</p>`}
    ${page && page.identities.length > 0 && html`<div class="table-wrap"><table>
      <caption class="visually-hidden">Identities</caption>
      <thead><tr><th scope="col">Identity</th><th scope="col">Kind</th><th scope="col">Owner</th><th scope="col">Boundary</th><th scope="col">Environment</th><th scope="col">Last used</th><th scope="col">Status</th></tr></thead>
      <tbody>${page.identities.map((i) => html`<tr key=${i.id}>
        <td><a href=${`#/identity/${encodeURIComponent(i.id)}`}>${i.id}</a></td><td>${i.kind}</td><td>${i.owner ?? '—'}</td><td>${i.boundary}</td><td>${i.environment}</td><td>${when(i.last_authenticated_at)}</td><td><span class=${`pill ${i.status}`}>${i.status}</span></td>
      </tr>`)}</tbody>
    </table></div>`}
    <div class="pager">
      <button type="button" disabled=${cursors.length === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <button type="button" disabled=${!page?.next_after} onClick=${() => setCursors([...cursors, page.next_after])}>Next</button>
    </div>`;
}
