#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (from node --cpu-prof): self time per function, and inclusive
// ("total") time per function, top N of each, plus time grouped by where the code lives
// (gomodproxy's dist/, node_modules/<pkg>, node: internals, GC, idle).
//
//   node bench/lib/cpuprofile.mjs <file.cpuprofile> [topN]
import { readFileSync } from 'node:fs';

function where(url) {
  if (!url) return '(native/vm)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  if (url.startsWith('node:')) return 'node:internals';
  const d = /\/dist\/(.+)$/.exec(url);
  if (d) return `gomodproxy:${d[1].split('/')[0]}`;
  return url.replace(/^file:\/\//, '');
}

function label(cf) {
  const url = cf.url ? cf.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/') : '';
  const fn = cf.functionName || '(anonymous)';
  return url ? `${fn} ${url}:${cf.lineNumber + 1}` : fn;
}

export function summarize(profile, topN = 25) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample time per node: timeDeltas line up with samples.
  const selfUs = new Map();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    totalUs += dt;
  }
  const bySelf = new Map();
  const byTotal = new Map();
  const byPlace = new Map();
  let idleUs = 0;
  let gcUs = 0;
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') idleUs += us;
    if (cf.functionName === '(garbage collector)') gcUs += us;
    const l = label(cf);
    bySelf.set(l, (bySelf.get(l) ?? 0) + us);
    const place = cf.functionName.startsWith('(') ? cf.functionName : where(cf.url);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
    // Inclusive: charge every distinct function on the stack once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const fl = label(nodes.get(cur).callFrame);
      if (seen.has(fl)) continue;
      seen.add(fl);
      byTotal.set(fl, (byTotal.get(fl) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const top = (m) =>
    [...m.entries()]
      .filter(([k]) => k !== '(idle)' && k !== '(root)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([name, us]) => ({ name, ms: us / 1000, pctOfBusy: (100 * us) / busyUs }));
  return {
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    gcMs: gcUs / 1000,
    self: top(bySelf),
    inclusive: top(byTotal),
    byPlace: top(byPlace),
  };
}

export function formatSummary(s, title = 'CPU profile') {
  const lines = [];
  lines.push(
    `${title}: ${s.totalMs.toFixed(0)} ms sampled, busy ${s.busyMs.toFixed(0)} ms (idle ${s.idleMs.toFixed(0)} ms, GC ${s.gcMs.toFixed(0)} ms = ${((100 * s.gcMs) / s.busyMs).toFixed(1)}% of busy)`,
  );
  const table = (name, rows) => {
    lines.push('', `${name} (% of busy time):`);
    for (const r of rows) lines.push(`  ${r.pctOfBusy.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`);
  };
  table('by where the code lives', s.byPlace);
  table('top functions by self time', s.self);
  table('top functions by inclusive time', s.inclusive);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/lib/cpuprofile.mjs <file.cpuprofile> [topN]\n');
    process.exit(2);
  }
  const s = summarize(JSON.parse(readFileSync(file, 'utf8')), Number(process.argv[3] ?? 25));
  process.stdout.write(`${formatSummary(s, file)}\n`);
}
