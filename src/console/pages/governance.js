// Governance: my review items to decide (keep/revoke), the review campaigns, over-privilege by
// team, findings by OWASP NHI category and their trend, decisions over time and denials by reason,
// and the evidence report for a period — each its own API call, shown only if policy allows.
import { useEffect, useState } from '../vendor/hooks.mjs';
import { get, post } from '../api.js';
import { ApiError } from '../api.js';
import { ProblemNote, Section, html, useLoad, when } from '../ui.js';
import { BarChart, HBarChart } from '../chart.js';
import { stepUpFrom, takeRetry } from '../stepup.js';

const pct = (x) => Math.round(x * 1000) / 10;

/** A review item's usage facts as one line: times as times, nothing as "never", ratios as percentages. */
function usageText(usage) {
  const parts = Object.entries(usage ?? {}).map(([k, v]) => {
    const label = k.replaceAll('_', ' ');
    if (v === null) return `${label}: never`;
    if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return `${label}: ${when(v)}`;
    if (k === 'over_privilege' && typeof v === 'number') return `${label}: ${pct(v)}%`;
    return `${label}: ${typeof v === 'object' ? JSON.stringify(v) : v}`;
  });
  return parts.join('; ') || '—';
}

function ItemCard({ item, onDone, onStepUp }) {
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(undefined);
  const decide = async (decision) => {
    setBusy(true);
    setError(undefined);
    try {
      await post(`/v1/reviews/items/${encodeURIComponent(item.id)}/decision`, { decision, ...(comment && { comment }) });
      onDone();
    } catch (e) {
      if (!stepUpFrom(e, onStepUp, `#/governance/decide/${encodeURIComponent(item.id)}/${decision}`)) setError(e);
    } finally {
      setBusy(false);
    }
  };
  const cid = `review-comment-${item.id}`;
  return html`<li class="card" data-item=${item.id}>
    <h3>${item.identity_id}</h3>
    <dl>
      <dt>What</dt><dd>${item.kind}: ${item.summary}</dd>
      <dt>Reference</dt><dd><code>${item.ref}</code></dd>
      <dt>Campaign</dt><dd>${item.campaign_id}</dd>
      <dt>Use</dt><dd>${usageText(item.usage)}</dd>
    </dl>
    <label for=${cid}>Comment</label>
    <textarea id=${cid} rows="2" maxlength="1000" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea>
    <div class="actions">
      <button type="button" class="primary" disabled=${busy} onClick=${() => decide('keep')}>Keep</button>
      <button type="button" class="danger" disabled=${busy} onClick=${() => decide('revoke')}>Revoke</button>
    </div>
    ${error && html`<p class="note" role="alert">${error.message}</p>`}
  </li>`;
}

/**
 * After a step-up the sign-in comes back to #/governance/decide/<item>/<decision>: the decision is
 * tried again, once — only if this tab started that step-up (takeRetry); the same hash from a link
 * does nothing.
 */
function useRetry(arg, onDone) {
  const [retried, setRetried] = useState(undefined);
  useEffect(() => {
    const m = /^decide\/([^/]+)\/(keep|revoke)$/.exec(arg ?? '');
    if (!m) return;
    if (!takeRetry(location.hash)) {
      location.replace('#/governance');
      return;
    }
    post(`/v1/reviews/items/${encodeURIComponent(m[1])}/decision`, { decision: m[2], comment: 'decided after step-up in the console' }).then(
      () => setRetried({ ok: true, item: m[1], decision: m[2] }),
      (e) => setRetried({ ok: false, item: m[1], decision: m[2], error: e }),
    );
    location.replace('#/governance');
    onDone();
  }, [arg]);
  return retried;
}

function Campaigns({ data, error }) {
  return html`<${ProblemNote} error=${error} what="the review campaigns" />
    ${data && (data.campaigns.length === 0 ? html`<p class="empty">No review campaign.</p>` : html`<div class="table-wrap"><table data-testid="campaigns">
      <caption class="visually-hidden">Review campaigns, newest first</caption>
      <thead><tr><th scope="col">Campaign</th><th scope="col">Status</th><th scope="col">Deadline</th><th scope="col">Decided</th><th scope="col">Keep</th><th scope="col">Revoke</th><th scope="col">By default</th></tr></thead>
      <tbody>${data.campaigns.map((c) => html`<tr key=${c.id}><td>${c.name}</td><td><span class="pill">${c.status}</span></td><td>${when(c.deadline_at)}</td><td>${c.progress.decided} of ${c.progress.items}</td><td>${c.progress.keep}</td><td>${c.progress.revoke}</td><td>${c.progress.by_default}</td></tr>`)}</tbody>
    </table></div>`)}`;
}

function download(name, type, body) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The evidence report: fetched with the console's header (a plain link would not carry it), then saved. */
function Evidence() {
  const [period, setPeriod] = useState('30d');
  const [report, setReport] = useState(undefined);
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const fetchReport = async (format) => {
    const res = await fetch(`/v1/reports/evidence?period=${encodeURIComponent(period)}${format === 'html' ? '&format=html' : ''}`, { headers: { 'x-portcullis-console': '1', accept: format === 'html' ? 'text/html' : 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    const text = await res.text();
    if (!res.ok) {
      let problem;
      try {
        problem = JSON.parse(text);
      } catch {
        problem = undefined;
      }
      throw new ApiError(res.status, problem);
    }
    return text;
  };
  const act = async (format) => {
    setBusy(true);
    setError(undefined);
    try {
      const text = await fetchReport(format);
      if (format === 'json') setReport(JSON.parse(text));
      download(`portcullis-evidence-${period}.${format}`, format === 'html' ? 'text/html' : 'application/json', text);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="filters" onSubmit=${(e) => {
      e.preventDefault();
      act('json');
    }}>
      <label>Period (2026-Q4, 2026-11, 2026 or 30d)<input name="period" value=${period} maxlength="16" onInput=${(e) => setPeriod(e.currentTarget.value)} /></label>
      <button type="submit" disabled=${busy}>Download JSON</button>
      <button type="button" disabled=${busy} onClick=${() => act('html')}>Download HTML</button>
    </form>
    ${error && (error.status === 403 ? html`<p class="note" role="status">You may not read the evidence report.</p>` : html`<p class="note" role="alert">${error.message}</p>`)}
    ${report && html`<dl class="facts" data-testid="evidence">
      <dt>Period</dt><dd>${report.period}: ${when(report.from)} – ${when(report.to)}</dd>
      <dt>Audit chain</dt><dd>${report.verification.ok ? 'verified' : 'NOT verified'} (${report.verification.streams.map((s) => `${s.stream} ${s.ok ? 'ok' : s.reason}`).join(', ')})</dd>
      <dt>Evidence</dt><dd>${Object.entries(report.summary).map(([k, v]) => `${k.replaceAll('_', ' ')}: ${v}`).join('; ')}</dd>
    </dl>`}`;
}

export function Governance({ arg, onStepUp }) {
  const mine = useLoad(() => get('/v1/reviews/mine'), []);
  const campaigns = useLoad(() => get('/v1/reviews'), []);
  const usage = useLoad(() => get('/v1/governance/usage?limit=3&top=5'), []);
  const decisions = useLoad(() => get('/v1/governance/decisions?since=14d'), []);
  const trend = useLoad(() => get('/v1/findings/trend?days=30'), []);
  const retried = useRetry(arg, () => {
    mine.reload();
    campaigns.reload();
  });
  const items = mine.data?.items ?? [];
  const d = decisions.data;
  const days = trend.data?.days ?? [];
  const latest = days[days.length - 1];
  const reload = () => {
    mine.reload();
    campaigns.reload();
  };
  return html`<h1>Governance</h1>
    ${retried && html`<p class=${retried.ok ? 'ok' : 'note'} role="status" data-testid="retried">${retried.ok ? `Decided ${retried.decision} on ${retried.item} after signing in again.` : `The decision on ${retried.item} still failed: ${retried.error.message}`}</p>`}
    <${Section} title="My items to decide" id="mine">
      <${ProblemNote} error=${mine.error} what="review items" />
      ${mine.loading && !mine.data ? html`<p>Loading…</p>` : items.length === 0 && !mine.error ? html`<p class="empty">No review item waits for you.</p>` : html`<ul class="cards">${items.map((i) => html`<${ItemCard} key=${i.id} item=${i} onDone=${reload} onStepUp=${onStepUp} />`)}</ul>`}
    <//>
    <${Section} title="Review campaigns" id="campaigns"><${Campaigns} data=${campaigns.data} error=${campaigns.error} /><//>
    <${Section} title="Decisions over time" id="decisions">
      <${ProblemNote} error=${decisions.error} what="the decision counts" />
      ${d && html`<p class="status">${d.total.allow} allowed and ${d.total.deny} denied, ${when(d.since)} – ${when(d.until)}${d.truncated ? ' (only the oldest 500,000 decisions of the window were counted)' : ''}.</p>
        <${BarChart} id="decisions-chart" title="Authorization decisions per day" desc="Allowed and denied decisions per UTC day." labels=${{ header: 'Day', values: d.buckets.map((b) => b.start.slice(5, 10)) }} series=${[{ name: 'Allowed', values: d.buckets.map((b) => b.allow) }, { name: 'Denied', values: d.buckets.map((b) => b.deny) }]} tick=${(i) => i % Math.ceil(d.buckets.length / 7) === 0} />
        <h3>Denials by reason</h3>
        ${d.denials_by_reason.length === 0 ? html`<p class="empty">No denial in the window.</p>` : html`<${HBarChart} id="denials-chart" title="Denied decisions by reason" rows=${d.denials_by_reason.slice(0, 12).map((r) => ({ label: r.reason, value: r.count }))} />`}`}
    <//>
    <${Section} title="Over-privilege by team" id="overprivilege">
      <${ProblemNote} error=${usage.error} what="the usage analysis" />
      ${usage.data && html`<p class="status">Estate: ${pct(usage.data.estate.over_privilege)}% of ${usage.data.estate.effective} effective permissions unused over ${when(usage.data.since)} – ${when(usage.data.until)}.</p>
        <${HBarChart} id="overprivilege-chart" title="Unused share of effective permissions by owner" unit="%" rows=${usage.data.by_owner.slice(0, 15).map((o) => ({ label: `${o.owner ?? '(no owner)'} (${o.identities})`, value: pct(o.over_privilege) }))} />
        ${usage.data.identities.length > 0 && html`<div class="table-wrap"><table data-testid="overprivileged">
          <caption>Most over-privileged identities</caption>
          <thead><tr><th scope="col">Identity</th><th scope="col">Unused</th><th scope="col">Effective</th><th scope="col">For example, unused</th></tr></thead>
          <tbody>${usage.data.identities.map((u) => html`<tr key=${u.identity}><td><a href=${`#/identity/${encodeURIComponent(u.identity)}`}>${u.identity}</a></td><td>${pct(u.over_privilege)}%</td><td>${u.effective}</td><td>${u.unused_permissions.map((p) => `${p.action} on ${p.resource.type}::${p.resource.id}`).join(', ') || '—'}</td></tr>`)}</tbody>
        </table></div>`}`}
    <//>
    <${Section} title="Findings by OWASP NHI category" id="findings">
      <${ProblemNote} error=${trend.error} what="the findings" />
      ${trend.data && (latest ? html`<p class="status">${latest.total} findings on ${latest.day}.</p>
        <${HBarChart} id="owasp-chart" title=${`Findings by OWASP NHI Top 10 category on ${latest.day}`} rows=${Object.entries(latest.by_owasp).sort((a, b) => b[1] - a[1]).map(([k, v]) => ({ label: k, value: v }))} />
        <${BarChart} id="findings-trend-chart" title="Findings per day" desc="High, medium and low severity findings per UTC day." labels=${{ header: 'Day', values: days.map((x) => x.day.slice(5)) }} series=${['high', 'medium', 'low'].map((s) => ({ name: s[0].toUpperCase() + s.slice(1), values: days.map((x) => x.by_severity[s]) }))} tick=${(i) => i % Math.ceil(days.length / 7) === 0} />` : html`<p class="empty">No findings snapshot yet (the governance job records one a day).</p>`)}
    <//>
    <${Section} title="Evidence report" id="evidence"><${Evidence} /><//>`;
}
