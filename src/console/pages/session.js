// Session: one gateway session's metadata, its SQL statements / SSH channels and commands / MCP tool
// calls in order with each decision (allow/deny, decision id), timing and rows, and whether its
// recording verifies (GET /v1/sessions/{id}?verify=true, a session.read decision, audited).
import { get } from '../api.js';
import { ProblemNote, html, useLoad, when } from '../ui.js';

/** The decision ids a record carries (statements: one per action asked; channels and calls: one). */
function decisionIds(p) {
  const ids = [];
  if (typeof p.decision_id === 'string') ids.push(p.decision_id);
  if (Array.isArray(p.decisions)) for (const d of p.decisions) if (d && typeof d.decision_id === 'string') ids.push(d.decision_id);
  return ids;
}

/** What happened, in a line: the statement, the command, the tool, the channel. */
function what(r) {
  const p = r.payload ?? {};
  switch (r.type) {
    case 'db.statement':
      return p.statement ?? p.text ?? `(${p.kind ?? 'unparsable'})`;
    case 'ssh.exec':
      return p.command ?? '';
    case 'ssh.channel':
      return `channel ${p.channel ?? '?'}: ${p.kind ?? ''}${p.action ? ` (${p.action})` : ''}${p.command ? ` ${p.command}` : ''}`;
    case 'ssh.output':
      return `channel ${p.channel ?? '?'}: ${Array.isArray(p.events) ? p.events.length : 0} terminal events`;
    case 'ssh.exit':
      return `channel ${p.channel ?? '?'} exited${p.exit_code !== undefined ? ` ${p.exit_code}` : ''}${p.signal ? ` (${p.signal})` : ''}${p.error ? `: ${p.error}` : ''}`;
    case 'mcp.call':
    case 'mcp.read':
    case 'mcp.prompt':
      return `${p.method ?? r.type} ${p.server ?? ''}/${p.name ?? ''}${p.arguments && Object.keys(p.arguments).length ? ` ${JSON.stringify(p.arguments).slice(0, 300)}` : ''}${p.outcome ? ` → ${p.outcome}` : ''}`;
    case 'session.start':
      return `started${p.reason ? `: ${p.reason}` : ''}`;
    case 'session.end':
      return `ended: ${p.reason ?? ''}`;
    default:
      return p.path ?? p.uri ?? p.name ?? '';
  }
}

function detail(r) {
  const p = r.payload ?? {};
  const parts = [];
  if (typeof p.duration_ms === 'number') parts.push(`${p.duration_ms} ms`);
  if (typeof p.rows === 'number') parts.push(`${p.rows} row${p.rows === 1 ? '' : 's'}`);
  if (p.sqlstate) parts.push(`SQLSTATE ${p.sqlstate}`);
  if (p.refusal) parts.push(String(p.refusal));
  if (r.type === 'db.statement' && p.executed === false) parts.push('not executed');
  if (p.is_error === true) parts.push('tool error');
  if (typeof p.message === 'string') parts.push(p.message.slice(0, 200));
  return parts.join(', ');
}

function Verification({ v }) {
  if (!v) return html`<p class="status">Verification not available.</p>`;
  return html`<p class=${`verify ${v.ok ? 'ok' : 'bad'}`} data-testid="verification" role="status">
    ${v.ok ? 'Recording verifies' : 'Recording does NOT verify'}: ${v.records} records${v.complete ? ', complete (session.end present)' : ', still open (no session.end yet)'}${v.missing?.length ? `; missing ${v.missing.join(', ')}` : ''}${v.reason ? `; ${v.reason}` : ''}.
    Session stream: chain ${v.stream?.ok ? 'ok' : 'broken'}, signed through ${v.stream?.signed_through ?? '?'} of ${v.stream?.last_seq ?? '?'}${v.stream?.witnessed_through !== undefined ? `, witnessed through ${v.stream.witnessed_through}` : ''}.
  </p>`;
}

export function SessionPage({ id }) {
  const got = useLoad(() => get(`/v1/sessions/${encodeURIComponent(id)}?verify=true`), [id]);
  // Only this id's answer (the previous session's stays in state while the next one loads).
  const s = got.data?.session?.id === id ? got.data.session : undefined;
  const records = s ? got.data.records : [];
  const t0 = s ? Date.parse(s.started_at) : 0;
  return html`<h1>Session <span class="mono">${id}</span></h1>
    <p><a href="#/sessions">All sessions</a></p>
    <${ProblemNote} error=${got.error} what="this session" />
    ${got.loading && !got.data && html`<p>Loading…</p>`}
    ${s && html`<dl class="facts" data-session=${s.id}>
      <dt>Identity</dt><dd>${s.identity}</dd>
      <dt>Gateway</dt><dd>${s.gateway} (${s.kind})</dd>
      <dt>Target</dt><dd>${s.target}</dd>
      <dt>Started</dt><dd>${when(s.started_at)}</dd>
      <dt>Ended</dt><dd>${s.live ? 'live' : `${when(s.ended_at)}${s.end_reason ? ` — ${s.end_reason}` : ''}`}</dd>
      ${s.lease && html`<dt>Lease</dt><dd>${s.lease}</dd>`}
      ${s.grant && html`<dt>Grant</dt><dd>${s.grant}</dd>`}
      <dt>Records</dt><dd>${s.records ?? records.length}</dd>
    </dl>
    <${Verification} v=${got.data.verification} />
    ${s.kind === 'ssh' && html`<p><a class="button" href=${`/console/replay.html?session=${encodeURIComponent(id)}`}>Replay the terminal</a></p>`}
    <h2 id="timeline">Timeline</h2>
    <div class="table-wrap"><table class="timeline" aria-labelledby="timeline">
      <thead><tr><th scope="col">#</th><th scope="col">At</th><th scope="col">Record</th><th scope="col">Decision</th><th scope="col">What</th><th scope="col">Timing, rows</th><th scope="col">Decision ids</th></tr></thead>
      <tbody>${records.map((r) => html`<tr key=${r.seq} data-type=${r.type} data-decision=${r.decision ?? ''}>
        <td>${r.payload?.n ?? ''}</td>
        <td title=${when(r.time)}>+${((Date.parse(r.time) - t0) / 1000).toFixed(3)} s</td>
        <td>${r.type}</td>
        <td>${r.decision ? html`<span class=${`pill ${r.decision}`}>${r.decision}</span>` : '—'}</td>
        <td class="what">${what(r)}</td>
        <td>${detail(r)}</td>
        <td class="mono ids">${decisionIds(r.payload ?? {}).join(' ')}</td>
      </tr>`)}</tbody>
    </table></div>`}`;
}
