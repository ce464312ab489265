#!/usr/bin/env node
// A small GOPROXY upstream for the cold-miss and memory runs: serves a GOPROXY-layout folder
// over loopback with node:http, after a fixed per-request latency (time to first byte, as a
// far-away proxy would add), and counts the requests it got per kind.
//
//   node bench/lib/upstream.mjs --root <dir> [--port 0] [--upstream-latency 50ms]
//
// Prints "listening <port>" on stdout once it serves. GET /-/stats answers the counters as
// JSON; /-/trace the arrival and end time of each request (process.hrtime ns); /-/reset
// zeroes both. Listens on 127.0.0.1 only.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

export function parseMs(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(String(v).trim());
  if (!m) throw new Error(`bad duration ${v}: expected e.g. 50ms, 0.05s or 50`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

const root = path.resolve(arg('--root', '.'));
const port = Number(arg('--port', '0'));
const latencyMs = parseMs(arg('--upstream-latency', arg('--latency', '0ms')));

const types = { info: 'application/json', mod: 'text/plain; charset=utf-8', zip: 'application/zip', list: 'text/plain; charset=utf-8' };
const counts = { info: 0, mod: 0, zip: 0, list: 0, other: 0, notFound: 0 };
// Per request: path, arrival and the moment the last byte was handed to the kernel, on the
// system-wide monotonic clock (process.hrtime), so a client on this machine can line them up.
let trace = [];
const TRACE_MAX = 100_000;

function kindOf(p) {
  if (p.endsWith('/@v/list')) return 'list';
  const m = /\.(info|mod|zip)$/.exec(p);
  return m ? m[1] : 'other';
}

const server = http.createServer({ keepAlive: true }, (req, res) => {
  const url = req.url ?? '/';
  if (url === '/-/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(counts));
    return;
  }
  if (url === '/-/trace') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(trace));
    return;
  }
  if (url === '/-/reset') {
    for (const k of Object.keys(counts)) counts[k] = 0;
    trace = [];
    res.writeHead(200);
    res.end('ok\n');
    return;
  }
  let rel;
  try {
    rel = decodeURIComponent(url.split('?')[0]);
  } catch {
    rel = '';
  }
  const file = path.join(root, path.normalize(rel));
  const kind = kindOf(rel);
  counts[kind]++;
  const arrived = process.hrtime.bigint();
  if (trace.length < TRACE_MAX) {
    res.once('finish', () => trace.push([rel, String(arrived), String(process.hrtime.bigint())]));
  }
  const answer = async () => {
    if (!file.startsWith(root + path.sep) || rel.includes('\0')) throw Object.assign(new Error('bad path'), { code: 'ENOENT' });
    const st = await stat(file);
    if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
    res.writeHead(200, { 'Content-Type': types[kind] ?? 'application/octet-stream', 'Content-Length': String(st.size) });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const s = createReadStream(file, { highWaterMark: 256 * 1024 });
    s.on('error', () => res.destroy());
    s.pipe(res);
  };
  const go = () =>
    answer().catch(() => {
      counts.notFound++;
      const body = `not found: ${rel}\n`;
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  if (latencyMs > 0) setTimeout(go, latencyMs);
  else go();
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${/** @type {import('node:net').AddressInfo} */ (server.address()).port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
