// The UI's stylesheet and script, served from the process's memory under names that carry their
// hash (so browsers keep them forever). Pages work without the script: it only makes search
// instant and the counters live. Both are allowed by the Content-Security-Policy as 'self'.
import { createHash } from 'node:crypto';

const CSS = `
:root {
  color-scheme: light dark;
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #f6f8fa;
  --accent: #0550ae; --accent-fg: #ffffff; --ok: #116329; --warn: #7d4e00; --bad: #a40e26;
  --code: #f3f4f6; --focus: #0969da;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9ea7b3; --line: #30363d; --card: #161b22;
    --accent: #4493f8; --accent-fg: #0d1117; --ok: #3fb950; --warn: #d29922; --bad: #ff7b72;
    --code: #1f242c; --focus: #4493f8;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 2; }
header.top { border-bottom: 1px solid var(--line); background: var(--card); }
header.top .bar { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; max-width: 76rem; margin: 0 auto; padding: .75rem 1rem; }
header.top .brand { font-weight: 700; font-size: 1.1rem; color: var(--fg); text-decoration: none; }
header.top nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
header.top .who { margin-left: auto; color: var(--muted); font-size: .9rem; }
main { max-width: 76rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; }
p, li { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .75rem; margin: 1rem 0; padding: 0; list-style: none; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; }
.card .label { color: var(--muted); font-size: .85rem; display: block; }
.card .value { font-size: 1.4rem; font-weight: 600; }
pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9rem; }
/* Wrapped rather than scrolled: a phone shows a whole go.mod line, and nothing needs a scroll key. */
pre { background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; white-space: pre-wrap; overflow-wrap: anywhere; }
code { background: var(--code); padding: .1rem .3rem; border-radius: 4px; overflow-wrap: anywhere; }
pre code { background: none; padding: 0; }
.table { overflow-x: auto; }
.table:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
td code, .tag, time { white-space: nowrap; overflow-wrap: normal; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tag { display: inline-block; font-size: .8rem; border: 1px solid currentColor; border-radius: 999px; padding: 0 .5rem; white-space: nowrap; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
form.search { display: flex; gap: .5rem; margin: 1rem 0; }
form.search input { flex: 1; min-width: 0; }
input, select, button { font: inherit; color: inherit; }
input[type=search], input[type=text], select { background: var(--bg); border: 1px solid var(--muted); border-radius: 6px; padding: .45rem .6rem; }
button, .button { background: var(--accent); color: var(--accent-fg); border: 0; border-radius: 6px; padding: .45rem .9rem; cursor: pointer; text-decoration: none; display: inline-block; }
button.danger { background: var(--bad); color: var(--bg); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; }
.actions form { margin: 0; }
.notice { border: 1px solid var(--line); border-left: 4px solid var(--accent); background: var(--card); padding: .75rem 1rem; border-radius: 6px; margin: 1rem 0; }
.notice.bad { border-left-color: var(--bad); color: var(--fg); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr)); gap: 1rem; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem; }
figcaption { font-size: .9rem; color: var(--muted); margin-bottom: .25rem; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
svg.chart .area { fill: var(--accent); opacity: .12; }
svg.chart text { fill: var(--muted); font-size: 12px; }
.pager { display: flex; gap: 1rem; margin: 1rem 0; }
form.filters { display: flex; flex-wrap: wrap; align-items: end; gap: .75rem 1rem; margin: 1rem 0; }
form.filters div { display: flex; flex-direction: column; gap: .2rem; min-width: 0; }
form.filters label { font-size: .9rem; color: var(--muted); }
svg.chart .empty { fill: var(--muted); font-size: 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
footer { max-width: 76rem; margin: 2rem auto; padding: 1rem; color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line); }
@media (max-width: 40rem) {
  h1 { font-size: 1.3rem; }
  header.top .who { margin-left: 0; width: 100%; }
  .hide-narrow { display: none; }
  /* Wide tables become one block per row, each value under its column's name. */
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; }
  table.stack tr { border-bottom: 1px solid var(--line); padding: .4rem 0; }
  table.stack td { border: 0; padding: .1rem 0; text-align: left; }
  table.stack td.hide-narrow { display: block; }
  table.stack td.empty { display: none; }
  table.stack td.act { padding-left: 5.5rem; }
  table.stack td[data-label]::before { content: attr(data-label); display: inline-block; min-width: 5.5rem; color: var(--muted); font-size: .85rem; }
}
`;

const JS = `
(() => {
  'use strict';
  // Instant search: the results list is replaced as the user types; without this script the form submits.
  const form = document.querySelector('form[data-instant]');
  const results = document.getElementById('results');
  if (form && results) {
    const input = form.querySelector('input[name=q]');
    let timer = 0;
    let seq = 0;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const mine = ++seq;
        const url = form.getAttribute('data-instant') + '?q=' + encodeURIComponent(input.value);
        try {
          const res = await fetch(url, { headers: { accept: 'text/html' }, credentials: 'same-origin' });
          if (!res.ok || mine !== seq) return;
          const text = await res.text();
          // A later keystroke's answer may have landed while this one's body was read.
          if (mine !== seq) return;
          results.innerHTML = text;
          history.replaceState(null, '', form.action + '?q=' + encodeURIComponent(input.value));
        } catch {
          // Offline or the server went away: the form still submits.
        }
      }, 120);
    });
  }
  // Live counters: elements with data-stat take the value of that field of the stats, every few seconds.
  const live = document.querySelectorAll('[data-stat]');
  const src = document.body.getAttribute('data-stats');
  if (live.length > 0 && src) {
    const tick = async () => {
      try {
        const res = await fetch(src, { credentials: 'same-origin' });
        if (!res.ok) return;
        const s = await res.json();
        for (const el of live) {
          const v = s[el.getAttribute('data-stat')];
          if (v !== undefined) el.textContent = v;
        }
      } catch {}
    };
    setInterval(tick, 5000);
  }
})();
`;

export interface Asset {
  name: string;
  type: string;
  body: Buffer;
}

function asset(base: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text.trim() + '\n');
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { name: `${base}.${hash}.${ext}`, type, body };
}

export const STYLESHEET = asset('app', 'css', 'text/css; charset=utf-8', CSS);
export const SCRIPT = asset('app', 'js', 'text/javascript; charset=utf-8', JS);
export const ASSETS = new Map([STYLESHEET, SCRIPT].map((a) => [a.name, a]));
