// Policies: the active version and its history, a line diff between any two versions, and an edit
// validated (dry run) and replayed against recorded decisions (what-if) before it is pushed.
import { useEffect, useState } from '../vendor/hooks.mjs';
import { get, api, post } from '../api.js';
import { ProblemNote, Section, html, useLoad, when } from '../ui.js';
import { stepUpFrom } from '../stepup.js';

/** Line diff by longest common subsequence: [{ op: ' ' | '-' | '+', text }]. Big inputs fall back to remove-all/add-all. */
export function diffLines(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > 4_000_000) return [...x.map((text) => ({ op: '-', text })), ...y.map((text) => ({ op: '+', text }))];
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ op: ' ', text: x[i] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ op: '-', text: x[i++] });
    else out.push({ op: '+', text: y[j++] });
  }
  while (i < n) out.push({ op: '-', text: x[i++] });
  while (j < m) out.push({ op: '+', text: y[j++] });
  return out;
}

/** The diff of two versions' file sets, file by file (added, removed, changed; unchanged files left out). */
function diffVersions(from, to) {
  const names = [...new Set([...from.files.map((f) => f.name), ...to.files.map((f) => f.name)])].sort();
  const out = [];
  for (const name of names) {
    const a = from.files.find((f) => f.name === name)?.text ?? '';
    const b = to.files.find((f) => f.name === name)?.text ?? '';
    if (a === b) continue;
    const lines = diffLines(a, b);
    out.push({ name, lines, added: lines.filter((l) => l.op === '+').length, removed: lines.filter((l) => l.op === '-').length });
  }
  return out;
}

/** Changed lines with three lines of context; long unchanged runs are folded. */
function DiffView({ files }) {
  if (files.length === 0) return html`<p class="empty" data-testid="diff-empty">The two versions have the same files.</p>`;
  return html`${files.map((f) => {
    const keep = f.lines.map((l, i) => l.op !== ' ' || f.lines.slice(Math.max(0, i - 3), i + 4).some((x) => x.op !== ' '));
    const rows = [];
    f.lines.forEach((l, i) => {
      if (keep[i]) rows.push(html`<span class=${`line ${l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'ctx'}`}>${l.op === ' ' ? '  ' : `${l.op} `}${l.text}\n</span>`);
      else if (i === 0 || keep[i - 1]) rows.push(html`<span class="line fold">  …\n</span>`);
    });
    return html`<div class="diff-file" data-file=${f.name}>
      <h3>${f.name} <small>(+${f.added} −${f.removed})</small></h3>
      <pre class="diff" data-testid="diff" tabindex="0" aria-label=${`Changes in ${f.name}`}>${rows}</pre>
    </div>`;
  })}`;
}

function History({ versions, active }) {
  const list = [...versions].sort((a, b) => b.version - a.version);
  const [from, setFrom] = useState(String(list[1]?.version ?? list[0]?.version ?? ''));
  const [to, setTo] = useState(String(list[0]?.version ?? ''));
  const [diff, setDiff] = useState(undefined);
  const [error, setError] = useState(undefined);
  const compare = async (e) => {
    e?.preventDefault();
    setError(undefined);
    try {
      const [a, b] = await Promise.all([get(`/v1/policies/versions/${encodeURIComponent(from)}`), get(`/v1/policies/versions/${encodeURIComponent(to)}`)]);
      setDiff({ from: a.version, to: b.version, files: diffVersions(a, b) });
    } catch (err) {
      setError(err);
    }
  };
  const option = (v) => html`<option value=${String(v.version)}>v${v.version}${v.version === active ? ' (active)' : ''} — ${when(v.created_at)}</option>`;
  return html`<div class="table-wrap"><table data-testid="history">
      <caption class="visually-hidden">Policy versions, newest first</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Activated</th><th scope="col">By</th><th scope="col">Reason</th><th scope="col">Digest</th></tr></thead>
      <tbody>${list.map((v) => html`<tr key=${v.version} data-version=${v.version}><td>v${v.version}${v.version === active ? html` <span class="pill">active</span>` : ''}</td><td>${when(v.created_at)}</td><td>${v.actor}</td><td>${v.reason}</td><td><code>${v.digest.slice(0, 12)}</code></td></tr>`)}</tbody>
    </table></div>
    <form class="filters" onSubmit=${compare} aria-label="Compare two versions">
      <label>From version<select value=${from} onChange=${(e) => setFrom(e.currentTarget.value)}>${list.map(option)}</select></label>
      <label>To version<select value=${to} onChange=${(e) => setTo(e.currentTarget.value)}>${list.map(option)}</select></label>
      <button type="submit">Show the diff</button>
    </form>
    <${ProblemNote} error=${error} what="these versions" />
    ${diff && html`<div aria-live="polite"><p class="status">Changes from v${diff.from} to v${diff.to}:</p><${DiffView} files=${diff.files} /></div>`}`;
}

function ReplayResult({ r }) {
  const flips = r.flips.allow_to_deny + r.flips.deny_to_allow;
  return html`<div data-testid="whatif" aria-live="polite">
    <p><strong>${r.replayed}</strong> of ${r.decisions} recorded decisions (${when(r.since)} – ${when(r.until)}) replayed: <strong data-testid="flips">${flips}</strong> would change (${r.flips.allow_to_deny} allow → deny, ${r.flips.deny_to_allow} deny → allow); ${r.unchanged} unchanged${r.unreconstructable.count ? `; ${r.unreconstructable.count} could not be rebuilt` : ''}.</p>
    ${r.flipped.length > 0 && html`<div class="table-wrap"><table>
      <caption>Decisions that would change</caption>
      <thead><tr><th scope="col">Time</th><th scope="col">Identity</th><th scope="col">Action</th><th scope="col">Resource</th><th scope="col">Recorded</th><th scope="col">With the edit</th></tr></thead>
      <tbody>${r.flipped.map((f) => html`<tr key=${f.decision_id}><td>${when(f.time)}</td><td>${f.identity}</td><td>${f.action}</td><td>${f.resource}</td><td>${f.recorded}</td><td><strong>${f.candidate}</strong></td></tr>`)}</tbody>
    </table></div>`}
  </div>`;
}

function Editor({ active, onPushed, onStepUp }) {
  const apiFiles = active.files.filter((f) => f.origin === 'api');
  const [name, setName] = useState(apiFiles[0]?.name ?? 'console.cedar');
  const [text, setText] = useState(apiFiles[0]?.text ?? '');
  const [reason, setReason] = useState('');
  const [state, setState] = useState({});
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const f = apiFiles.find((x) => x.name === name);
    if (f) setText(f.text);
  }, [name]);
  // The API-managed files with the edit applied (the configuration's files stay as they are).
  const edited = () => [...apiFiles.filter((f) => f.name !== name).map((f) => ({ name: f.name, text: f.text })), { name, text }];
  const run = async (key, fn) => {
    setBusy(true);
    setState((s) => ({ ...s, [key]: undefined, [`${key}Error`]: undefined }));
    try {
      const r = await fn();
      setState((s) => ({ ...s, [key]: r }));
    } catch (e) {
      if (stepUpFrom(e, onStepUp)) return;
      setState((s) => ({ ...s, [`${key}Error`]: e }));
    } finally {
      setBusy(false);
    }
  };
  const validate = () => run('valid', () => api('PUT', '/v1/policies', { files: edited(), reason: reason || 'validate from the console', dry_run: true }));
  const whatIf = () => run('replay', () => post('/v1/policies/replay', { files: [...active.files.filter((f) => f.origin !== 'api').map((f) => ({ name: f.name, text: f.text })), ...edited()], since: '30d' }));
  const push = () =>
    run('pushed', async () => {
      const r = await api('PUT', '/v1/policies', { files: edited(), reason });
      // The page reloads the active version, which starts a fresh editor: the result is the page's.
      onPushed(r);
      return r;
    });
  const change = (setter) => (e) => {
    setter(e.currentTarget.value);
    setState({});
  };
  const mayWrite = state.validError?.status !== 403;
  return html`<form class="editor" onSubmit=${(e) => e.preventDefault()}>
    <label for="policy-file">File (API-managed; the configuration's files stay)</label>
    <input id="policy-file" list="policy-files" value=${name} maxlength="128" pattern="[A-Za-z0-9][A-Za-z0-9._-]*" onInput=${change(setName)} />
    <datalist id="policy-files">${apiFiles.map((f) => html`<option value=${f.name} />`)}</datalist>
    <label for="policy-text">Cedar policies</label>
    <textarea id="policy-text" rows="12" spellcheck="false" class="code" value=${text} onInput=${change(setText)}></textarea>
    <label for="policy-reason">Reason for the change</label>
    <input id="policy-reason" value=${reason} maxlength="1024" onInput=${change(setReason)} />
    <div class="actions">
      <button type="button" disabled=${busy} onClick=${validate}>Validate</button>
      <button type="button" disabled=${busy} onClick=${whatIf}>What if? (replay 30 days)</button>
      ${mayWrite && html`<button type="button" class="primary" disabled=${busy || !reason || !state.valid} title=${state.valid ? '' : 'Validate the edit first'} onClick=${push}>Push</button>`}
    </div>
    <div aria-live="polite">
      ${state.valid && html`<p class="ok" data-testid="valid">Valid: ${state.valid.policies.length} policies (${state.valid.policies.join(', ')}).</p>`}
      ${state.validError && (state.validError.status === 403 ? html`<p class="note" role="status">You may not change the policies, so the edit cannot be validated or pushed here.</p>` : html`<p class="note" role="alert" data-testid="invalid">Invalid: ${state.validError.message}</p>`)}
      ${state.replayError && html`<p class="note" role="alert">What-if failed: ${state.replayError.status === 403 ? 'you may not replay recorded decisions.' : state.replayError.message}</p>`}
      ${state.replay && html`<${ReplayResult} r=${state.replay} />`}
      ${state.pushedError && html`<p class="note" role="alert">Push refused: ${state.pushedError.message}</p>`}
    </div>
  </form>`;
}

export function Policies({ onStepUp }) {
  const active = useLoad(() => get('/v1/policies'), []);
  const versions = useLoad(() => get('/v1/policies/versions'), []);
  const [pushed, setPushed] = useState(undefined);
  const reload = (r) => {
    setPushed(r);
    active.reload();
    versions.reload();
  };
  const a = active.data;
  return html`<h1>Policies</h1>
    <${Section} title="Active version" id="active">
      <${ProblemNote} error=${active.error} what="the policies" />
      ${a && html`<dl class="facts" data-testid="active">
        <dt>Version</dt><dd>v${a.version}</dd><dt>Activated</dt><dd>${when(a.created_at)} by ${a.actor}</dd><dt>Reason</dt><dd>${a.reason}</dd>
        <dt>Files</dt><dd>${a.files.map((f) => `${f.name} (${f.origin})`).join(', ')}</dd><dt>Policies</dt><dd>${a.policies.length}: ${a.policies.join(', ')}</dd>
      </dl>`}
    <//>
    <${Section} title="History" id="history">
      <${ProblemNote} error=${versions.error} what="the policy history" />
      ${versions.data && html`<${History} key=${versions.data.versions.length} versions=${versions.data.versions} active=${a?.version} />`}
    <//>
    ${a && html`<${Section} title="Edit, validate, what-if, push" id="edit">
      ${pushed && html`<p class="ok" role="status" data-testid="pushed">${pushed.changed ? `Activated v${pushed.version}.` : `No change (still v${pushed.version}).`}</p>`}
      <${Editor} key=${a.version} active=${a} onPushed=${reload} onStepUp=${onStepUp} />
    <//>`}`;
}
