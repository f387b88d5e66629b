// Shared pieces of the console's pages: htm bound to Preact, times, problem messages, small widgets.
import { h } from './vendor/preact.mjs';
import { useEffect, useState } from './vendor/hooks.mjs';
import htm from './vendor/htm.mjs';

export const html = htm.bind(h);

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function remaining(iso, now) {
  const s = Math.max(0, Math.floor((Date.parse(iso) - now) / 1000));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** The current time, ticking every second (for timers). */
export function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

/** Loads `fn()` when `deps` change: { data, error, loading, reload }. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

export function ProblemNote({ error, what }) {
  if (!error) return null;
  const status = error.status;
  const text = status === 403 || status === 404 ? `You may not see ${what}.` : `Could not load ${what}: ${error.message}`;
  return html`<p class="note" role="status" data-status=${status}>${text}</p>`;
}

export function Section({ title, children, id }) {
  return html`<section aria-labelledby=${id}><h2 id=${id}>${title}</h2>${children}</section>`;
}
