// Number formats and Markdown tables for the benchmark reports.

export const f0 = (n) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(0));
export const f1 = (n) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(1));
export const f2 = (n) => (n == null || !Number.isFinite(n) ? '-' : n.toFixed(2));
export const pct = (n) => (n == null || !Number.isFinite(n) ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(1)}%`);

export function mdTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}
