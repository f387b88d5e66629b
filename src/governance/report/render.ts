// The evidence report as one self-contained HTML page (inline CSS and SVG charts, no scripts, no
// external assets — it opens offline and prints to PDF as it is). Every value is escaped.
import type { EvidenceCategory, EvidenceReport } from './evidence.ts';
import { EVIDENCE_CATEGORIES } from './evidence.ts';

const COLORS: Record<EvidenceCategory, string> = { rotation: '#2b6cb0', review: '#2f855a', revocation: '#c53030', 'break-glass': '#b7791f', 'access-request': '#6b46c1' };

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Stacked bars: evidence events per week, one colour per category. */
export function weeklyChart(r: EvidenceReport): string {
  const w = 640;
  const h = 200;
  const pad = 28;
  const n = Math.max(1, r.weekly.length);
  const max = Math.max(1, ...r.weekly.map((x) => EVIDENCE_CATEGORIES.reduce((a, c) => a + x.counts[c], 0)));
  const bw = (w - pad * 2) / n;
  const bars: string[] = [];
  r.weekly.forEach((x, i) => {
    let y = h - pad;
    for (const c of EVIDENCE_CATEGORIES) {
      const bh = ((h - pad * 2) * x.counts[c]) / max;
      if (bh <= 0) continue;
      y -= bh;
      bars.push(`<rect class="bar" data-category="${esc(c)}" x="${(pad + i * bw + 2).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, bw - 4).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[c]}"><title>${esc(x.week)} ${esc(c)}: ${x.counts[c]}</title></rect>`);
    }
  });
  const legend = EVIDENCE_CATEGORIES.map((c, i) => `<rect x="${pad + i * 120}" y="4" width="10" height="10" fill="${COLORS[c]}"/><text x="${pad + i * 120 + 14}" y="13" font-size="11">${esc(c)}</text>`).join('');
  return `<svg id="chart-weekly" role="img" aria-label="evidence events per week" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${legend}<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#444"/><text x="${pad}" y="${h - 8}" font-size="10">${esc(r.weekly[0]?.week ?? '')}</text><text x="${w - pad}" y="${h - 8}" font-size="10" text-anchor="end">${esc(r.weekly.at(-1)?.week ?? '')}</text><text x="4" y="${pad + 4}" font-size="10">${max}</text>${bars.join('')}</svg>`;
}

/** Horizontal bars: review outcomes over the period's campaigns. */
export function reviewChart(r: EvidenceReport): string {
  const t = { keep: 0, revoke: 0, narrow: 0, by_default: 0 };
  for (const c of r.campaigns) {
    const p = c.progress as Partial<typeof t> | undefined;
    for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += p?.[k] ?? 0;
  }
  const max = Math.max(1, ...Object.values(t));
  const rows = Object.entries(t).map(([k, v], i) => `<text x="0" y="${20 + i * 24}" font-size="12">${esc(k)}</text><rect class="bar" x="90" y="${8 + i * 24}" width="${((400 * v) / max).toFixed(1)}" height="16" fill="#2f855a"/><text x="${96 + (400 * v) / max}" y="${20 + i * 24}" font-size="12">${v}</text>`);
  return `<svg id="chart-reviews" role="img" aria-label="review decisions" xmlns="http://www.w3.org/2000/svg" width="560" height="110" viewBox="0 0 560 110">${rows.join('')}</svg>`;
}

/** Horizontal bars: the share of each identity's effective permissions it did not use (90 days). */
export function overPrivilegeChart(r: EvidenceReport): string {
  const rows = r.over_privilege.identities.map((u, i) => {
    const w = 300 * u.over_privilege;
    return `<text x="0" y="${16 + i * 20}" font-size="11">${esc(u.identity)}</text><rect class="bar" x="300" y="${5 + i * 20}" width="${w.toFixed(1)}" height="14" fill="#c53030"><title>${u.used} of ${u.effective} used</title></rect><text x="${306 + w}" y="${16 + i * 20}" font-size="11">${Math.round(u.over_privilege * 100)} %</text>`;
  });
  const h = Math.max(24, 10 + rows.length * 20);
  return `<svg id="chart-overprivilege" role="img" aria-label="over-privilege per identity" xmlns="http://www.w3.org/2000/svg" width="680" height="${h}" viewBox="0 0 680 ${h}">${rows.join('') || '<text x="0" y="16" font-size="12">no effective permissions</text>'}</svg>`;
}

function table(headers: string[], rows: unknown[][], id: string): string {
  return `<table id="${esc(id)}"><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

export function renderHtml(r: EvidenceReport): string {
  const sections = EVIDENCE_CATEGORIES.map((c) => {
    const items = r.items.filter((i) => i.category === c);
    const rows = items.map((i) => [i.time, i.type, i.actor, i.subject ?? '', `${i.stream}#${i.seq}`, i.hash.slice(0, 16) + '…']);
    return `<section class="evidence" data-category="${esc(c)}"><h2>${esc(c)} (${items.length})</h2>${items.length ? table(['time', 'event', 'actor', 'subject', 'audit event', 'hash'], rows, `items-${c}`) : '<p class="none">no events in the period</p>'}</section>`;
  }).join('\n');
  const v = r.verification;
  const verification = `<section id="verification"><h2>Verification ${v.ok ? '<span class="ok">chain verified</span>' : '<span class="bad">chain NOT verified</span>'}</h2>
<p>Each event above is named by its stream and sequence number; its hash links it to the one before. Check offline with <code>portcullis audit verify</code> against an export and the keys below.</p>
${table(['stream', 'head seq', 'head hash', 'checkpoints', 'signed through', 'witnessed through', 'ok'], v.streams.map((s) => [s.stream, s.head_seq, s.head_hash ?? '-', s.checkpoints, s.signed_through, s.witnessed_through ?? '-', s.ok ? 'yes' : `no: ${s.reason ?? ''}`]), 'chain-heads')}
<p>Witness: ${v.witness ? `${esc(v.witness.source)} — ${v.witness.checkpoints} checkpoints, ${v.witness.ok ? 'valid' : 'INVALID'}` : 'none configured'}</p>
<details><summary>Checkpoint keys (JWK)</summary><pre>${esc(JSON.stringify(v.keys, null, 2))}</pre></details></section>`;
  const campaigns = table(['campaign', 'name', 'opened', 'deadline', 'status', 'default action'], r.campaigns.map((c) => [c.id, c.name, c.opened_at, c.deadline_at, c.status, c.default_action]), 'campaigns');
  const rotation = table(['kind', 'id', 'holder', 'due', 'overdue', 'how'], r.rotation.map((x) => [x.kind, x.id, x.holder, x.due_at ?? '-', x.overdue ? 'OVERDUE' : 'no', x.how]), 'rotation');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Portcullis evidence ${esc(r.period)}</title>
<style>body{font:13px/1.4 system-ui,sans-serif;margin:24px;color:#1a202c}h1{font-size:20px}h2{font-size:15px;margin-top:24px}table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #cbd5e0;padding:3px 6px;text-align:left;font-size:11px;word-break:break-all}th{background:#edf2f7}.ok{color:#2f855a}.bad{color:#c53030}.none{color:#718096}@media print{section{break-inside:avoid-page}}</style></head>
<body><h1>Evidence for ${esc(r.period)}</h1>
<p id="meta">${esc(r.from)} – ${esc(r.to)}; generated ${esc(r.generated_at)} by ${esc(r.generated_by)}${r.truncated ? ' — <b>truncated</b>: narrow the period' : ''}</p>
${table(['category', 'events'], Object.entries(r.summary), 'summary')}
<h2>Evidence per week</h2>${weeklyChart(r)}
<h2>Access reviews</h2>${reviewChart(r)}${campaigns}
<h2>Over-privilege: ${Math.round(r.over_privilege.estate * 100)} % of ${r.over_privilege.effective} effective permissions unused in 90 days</h2>${overPrivilegeChart(r)}
<h2>Rotation status</h2>${rotation}
${sections}
${verification}
</body></html>`;
}
