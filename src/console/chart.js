// Small accessible charts as inline SVG: role="img" with a <title> and <desc>, colours that keep
// WCAG AA contrast, and the same numbers in a data table beside it (a screen reader's way in).
import { html } from './ui.js';

const W = 640;
const H = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 44 };
/** Series colours (≥ 4.5:1 on white). */
export const COLOURS = ['#0b5cad', '#a4161a', '#6b4c00', '#1f6b3a', '#5b3f99'];

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function DataTable({ id, caption, labels, series }) {
  return html`<details class="chart-data">
    <summary>Data table</summary>
    <div class="table-wrap"><table id=${id}>
      <caption>${caption}</caption>
      <thead><tr><th scope="col">${labels.header ?? ''}</th>${series.map((s) => html`<th scope="col">${s.name}</th>`)}</tr></thead>
      <tbody>${labels.values.map((l, i) => html`<tr><th scope="row">${l}</th>${series.map((s) => html`<td>${s.values[i]}</td>`)}</tr>`)}</tbody>
    </table></div>
  </details>`;
}

/**
 * Grouped bars over categories (days, reasons, categories). `labels`: { header, values: string[] };
 * `series`: [{ name, values: number[] }]. `tick(i)` says whether to print the i-th label under the axis.
 */
export function BarChart({ id, title, desc, labels, series, tick = () => true }) {
  const n = labels.values.length;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const band = n ? iw / n : iw;
  const bw = Math.max(1, (band * 0.8) / Math.max(1, series.length));
  const y = (v) => PAD.top + ih - (v / max) * ih;
  const grid = [0, 0.5, 1].map((f) => max * f);
  const summary = series.map((s) => `${s.name}: ${s.values.reduce((a, b) => a + b, 0)} in total`).join('; ');
  return html`<figure class="chart" data-chart=${id}>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-labelledby=${`${id}-title ${id}-desc`} preserveAspectRatio="xMidYMid meet">
      <title id=${`${id}-title`}>${title}</title>
      <desc id=${`${id}-desc`}>${desc ? `${desc} ` : ''}${n} ${labels.header ?? 'values'}; ${summary}.</desc>
      ${grid.map((g) => html`<g><line x1=${PAD.left} x2=${W - PAD.right} y1=${y(g)} y2=${y(g)} class="grid" /><text x=${PAD.left - 6} y=${y(g) + 4} text-anchor="end" class="axis">${Math.round(g * 100) / 100}</text></g>`)}
      ${series.map((s, si) => html`<g fill=${COLOURS[si % COLOURS.length]}>${s.values.map((v, i) => html`<rect x=${PAD.left + i * band + band * 0.1 + si * bw} y=${y(v)} width=${bw} height=${Math.max(0, PAD.top + ih - y(v))}><title>${labels.values[i]}: ${s.name} ${v}</title></rect>`)}</g>`)}
      ${labels.values.map((l, i) => (tick(i) ? html`<text x=${PAD.left + i * band + band / 2} y=${H - 8} text-anchor="middle" class="axis">${l.length > 14 ? `${l.slice(0, 13)}…` : l}</text>` : null))}
    </svg>
    <figcaption>${series.length > 1 ? series.map((s, si) => html`<span class="legend"><span class="swatch" data-colour=${si}></span>${s.name}</span>`) : null}</figcaption>
    <${DataTable} id=${`${id}-table`} caption=${title} labels=${labels} series=${series} />
  </figure>`;
}

/** Horizontal bars for long category names (denials by reason, findings by category). */
export function HBarChart({ id, title, desc, rows, unit = '' }) {
  const rh = 22;
  const left = 220;
  const h = Math.max(rh, rows.length * rh) + 8;
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  const iw = W - left - 60;
  return html`<figure class="chart" data-chart=${id}>
    <svg viewBox=${`0 0 ${W} ${h}`} role="img" aria-labelledby=${`${id}-title ${id}-desc`}>
      <title id=${`${id}-title`}>${title}</title>
      <desc id=${`${id}-desc`}>${desc ? `${desc} ` : ''}${rows.map((r) => `${r.label}: ${r.value}${unit}`).join('; ') || 'No data.'}</desc>
      ${rows.map((r, i) => html`<g>
        <text x=${left - 6} y=${i * rh + 16} text-anchor="end" class="axis">${r.label.length > 34 ? `${r.label.slice(0, 33)}…` : r.label}</text>
        <rect x=${left} y=${i * rh + 4} width=${(r.value / max) * iw} height=${rh - 8} fill=${COLOURS[0]}><title>${r.label}: ${r.value}${unit}</title></rect>
        <text x=${left + (r.value / max) * iw + 4} y=${i * rh + 16} class="axis">${r.value}${unit}</text>
      </g>`)}
    </svg>
    <${DataTable} id=${`${id}-table`} caption=${title} labels=${{ header: 'Category', values: rows.map((r) => r.label) }} series=${[{ name: unit ? `Value (${unit.trim()})` : 'Count', values: rows.map((r) => r.value) }]} />
  </figure>`;
}
