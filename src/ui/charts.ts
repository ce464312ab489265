// Small line charts as SVG, drawn by the server from numbers (no script, no chart library).
// Every chart has a title and a one-sentence summary for screen readers.
import { escapeHtml, trusted, type Html } from './html.js';

export interface Point {
  /** ms since epoch. */
  t: number;
  /** null: no sample (the line breaks there). */
  v: number | null;
}

export interface ChartOptions {
  title: string;
  /** Formats a value for the axis and the summary. */
  format: (v: number) => string;
  /** The window shown, ending now (ms). */
  spanMs: number;
  now?: number;
  /** A fixed top of the scale (a ratio's 1, a limit); default the largest value. */
  max?: number;
  /** A horizontal line to draw (a limit), with its label. */
  mark?: { v: number; label: string };
}

// Near the size a chart is shown at (a third of a wide page, or a phone's width), so that its
// 12 px labels stay about 12 px on screen.
const W = 360;
const H = 150;
const PAD = { left: 52, right: 8, top: 10, bottom: 22 };

export function lineChart(points: readonly Point[], o: ChartOptions): Html {
  const now = o.now ?? Date.now();
  const t0 = now - o.spanMs;
  const shown = points.filter((p) => p.t >= t0);
  const values = shown.map((p) => p.v).filter((v): v is number => v !== null && Number.isFinite(v));
  const top = Math.max(o.max ?? 0, o.mark?.v ?? 0, ...values, 0) || 1;
  const x = (t: number): number => PAD.left + ((t - t0) / o.spanMs) * (W - PAD.left - PAD.right);
  const y = (v: number): number => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const segments: string[][] = [];
  let current: string[] = [];
  for (const p of shown) {
    if (p.v === null || !Number.isFinite(p.v)) {
      if (current.length > 0) segments.push(current);
      current = [];
      continue;
    }
    current.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  }
  if (current.length > 0) segments.push(current);
  const id = `c${Math.abs(hash(o.title)).toString(36)}`;
  const last = values.at(-1);
  const summary =
    values.length === 0
      ? `${o.title}: no samples yet in this window.`
      : `${o.title}: now ${o.format(last as number)}, lowest ${o.format(Math.min(...values))}, highest ${o.format(Math.max(...values))}.`;
  const lines = segments
    .map((s) => {
      const area =
        s.length > 1
          ? `<polygon class="area" points="${s[0]?.split(',')[0]},${y(0).toFixed(1)} ${s.join(' ')} ${s.at(-1)?.split(',')[0]},${y(0).toFixed(1)}"/>`
          : '';
      return `${area}<polyline class="line" points="${s.join(' ')}"/>`;
    })
    .join('');
  const mark = o.mark
    ? `<line class="grid" stroke-dasharray="4 3" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(o.mark.v).toFixed(1)}" y2="${y(o.mark.v).toFixed(1)}"/><text x="${W - PAD.right}" y="${(y(o.mark.v) - 3).toFixed(1)}" text-anchor="end">${escapeHtml(o.mark.label)}</text>`
    : '';
  const svg =
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}t ${id}d" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="${id}t">${escapeHtml(o.title)}</title><desc id="${id}d">${escapeHtml(summary)}</desc>` +
    `<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(0)}" y2="${y(0)}"/>` +
    `<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(top)}" y2="${y(top)}"/>` +
    `<text x="${PAD.left - 6}" y="${y(top) + 4}" text-anchor="end">${escapeHtml(o.format(top))}</text>` +
    `<text x="${PAD.left - 6}" y="${y(0) + 4}" text-anchor="end">${escapeHtml(o.format(0))}</text>` +
    `<text x="${PAD.left}" y="${H - 6}">${escapeHtml(ago(o.spanMs))}</text>` +
    `<text x="${W - PAD.right}" y="${H - 6}" text-anchor="end">now</text>` +
    mark +
    lines +
    (values.length === 0
      ? `<text class="empty" x="${(PAD.left + W - PAD.right) / 2}" y="${(PAD.top + H - PAD.bottom) / 2 + 5}" text-anchor="middle">no samples yet</text>`
      : '') +
    `</svg>`;
  return trusted(svg);
}

function ago(ms: number): string {
  if (ms >= 86_400_000) return `${Math.round(ms / 86_400_000)} d ago`;
  if (ms >= 3_600_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return h;
}
