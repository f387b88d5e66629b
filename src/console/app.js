// The console's shell: who is signed in (GET /v1/auth/session), navigation, the hash router, sign-out.
import { render } from './vendor/preact.mjs';
import { useEffect, useState } from './vendor/hooks.mjs';
import { ApiError, get } from './api.js';
import { html } from './ui.js';
import { Approvals } from './pages/approvals.js';
import { Inventory } from './pages/inventory.js';
import { IdentityPage } from './pages/identity.js';
import { Sessions } from './pages/sessions.js';
import { SessionPage } from './pages/session.js';
import { Audit } from './pages/audit.js';
import { Policies } from './pages/policies.js';
import { Governance } from './pages/governance.js';
import { describeStepUp, expectRetry, stepUpLogin } from './stepup.js';

const SIGN_IN_ERRORS = {
  login_state_mismatch: 'The sign-in did not start in this browser (or took too long). Sign in again.',
  sign_in_failed: 'The identity provider did not let you in.',
  tls_required: 'The console needs HTTPS: its session cookie is never sent in clear text.',
  not_found: 'No human sign-in (oidc-human trust) is configured on this server.',
};

function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [page, ...rest] = h.split('/');
  return { page: page || 'approvals', arg: rest.length ? decodeURIComponent(rest.join('/')) : undefined };
}

function SignIn() {
  const code = new URLSearchParams(location.search).get('error');
  return html`<main class="signin">
    <h1>Portcullis</h1>
    <p>Approve access, respond and audit. Sign in with your organisation's single sign-on.</p>
    ${code && html`<p class="note" role="alert">${SIGN_IN_ERRORS[code] ?? `Sign-in failed (${code}).`}</p>`}
    <p><a class="button primary" href="/console/login">Sign in</a></p>
  </main>`;
}

/** An action asked for step-up: sign in again with it (MFA, max_age) and come back to retry. */
function StepUp({ required, retry, onCancel }) {
  return html`<div class="note stepup" role="alertdialog" aria-labelledby="stepup-title" aria-describedby="stepup-what">
    <h2 id="stepup-title">Sign in again to continue</h2>
    <p id="stepup-what">${describeStepUp(required)} You come back here and the action is tried again.</p>
    <div class="actions"><a class="button primary" href=${stepUpLogin(required, retry)} onClick=${() => expectRetry(retry)}>Sign in again</a><button type="button" onClick=${onCancel}>Cancel</button></div>
  </div>`;
}

function Layout({ me, r, children, stepUp, onCancel }) {
  const link = (page, label) => html`<li><a href=${`#/${page}`} aria-current=${r.page === page ? 'page' : undefined}>${label}</a></li>`;
  const signOut = async () => {
    await fetch('/console/logout', { method: 'POST', headers: { 'x-portcullis-console': '1' }, credentials: 'same-origin' });
    location.replace('/console/');
  };
  return html`<div class="layout">
    <header>
      <a class="brand" href="#/approvals">Portcullis</a>
      <nav aria-label="Main"><ul>${link('approvals', 'Approvals')}${link('inventory', 'Inventory')}${link('sessions', 'Sessions')}${link('audit', 'Audit')}${link('policies', 'Policies')}${link('governance', 'Governance')}</ul></nav>
      <div class="me"><span data-testid="me">${me.identity.id}</span> <button type="button" onClick=${signOut}>Sign out</button></div>
    </header>
    <main id="main">${stepUp && html`<${StepUp} ...${stepUp} onCancel=${onCancel} />`}${children}</main>
  </div>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [r, setR] = useState(route());
  const [stepUp, setStepUp] = useState(undefined);
  const onStepUp = (required, retry) => setStepUp({ required, retry });
  useEffect(() => {
    const on = () => setR(route());
    addEventListener('hashchange', on);
    get('/v1/auth/session').then(setMe, (e) => setMe(e instanceof ApiError && e.status === 401 ? null : { failed: e }));
    return () => removeEventListener('hashchange', on);
  }, []);
  if (me === undefined) return html`<p class="loading">Loading…</p>`;
  if (me === null) return html`<${SignIn} />`;
  if (me.failed) return html`<main><p class="note" role="alert">The console could not reach the API: ${me.failed.message}</p></main>`;
  let page;
  if (r.page === 'inventory') page = html`<${Inventory} />`;
  else if (r.page === 'identity' && r.arg) page = html`<${IdentityPage} id=${r.arg} me=${me} />`;
  else if (r.page === 'sessions') page = html`<${Sessions} />`;
  else if (r.page === 'session' && r.arg) page = html`<${SessionPage} id=${r.arg} />`;
  else if (r.page === 'audit') page = html`<${Audit} />`;
  else if (r.page === 'policies') page = html`<${Policies} onStepUp=${onStepUp} />`;
  else if (r.page === 'governance') page = html`<${Governance} me=${me} arg=${r.arg} onStepUp=${onStepUp} />`;
  else page = html`<${Approvals} me=${me} />`;
  return html`<${Layout} me=${me} r=${r} stepUp=${stepUp} onCancel=${() => setStepUp(undefined)}>${page}<//>`;
}

render(html`<${App} />`, document.getElementById('app'));
