#!/usr/bin/env node
// A recording relay in front of an upstream GOPROXY: forwards every request as it is and counts
// them per path. Put between a proxy and its upstream, it tells how many upstream requests the
// proxy made for one artifact (one fetch for 50 clients, or one per client), whatever the upstream
// is: the synthetic one of lib/upstream.mjs or a real registry.
//
//   node bench/lib/relay.mjs --target <http(s) URL of the upstream, optionally with a path> [--port 0]
//
// Prints "listening <port>" on stdout once it serves; listens on 127.0.0.1 only. GET /-/counts
// answers {total, bytes, byKind, byPath} as JSON (paths percent-decoded); /-/reset zeroes them. Redirects and errors of
// the upstream are passed on as they are (a 302 is the client's to follow); an upstream that
// cannot be reached is a 502.
import http from 'node:http';
import https from 'node:https';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const target = new URL(arg('--target', ''));
const port = Number(arg('--port', '0'));
const timeoutMs = Number(arg('--timeout-ms', '120000'));
const base = target.pathname.replace(/\/+$/, '');
const lib = target.protocol === 'https:' ? https : http;
// Kept alive and wide: the proxies behind the relay fetch in parallel, and a relay that
// serialized them would be what is measured.
const agent = new lib.Agent({ keepAlive: true, maxSockets: 128 });

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

let counts = fresh();
function fresh() {
  return { total: 0, bytes: 0, byKind: {}, byPath: {} };
}

function kindOf(p) {
  if (p.startsWith('/sumdb/')) return 'sumdb';
  if (p.endsWith('/@v/list')) return 'list';
  if (p.endsWith('/@latest')) return 'latest';
  const m = /\.(info|mod|zip)$/.exec(p);
  return m ? m[1] : 'other';
}

const server = http.createServer({ keepAlive: true }, (req, res) => {
  const url = req.url ?? '/';
  if (url === '/-/counts') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(counts));
    return;
  }
  if (url === '/-/reset') {
    counts = fresh();
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{"reset":true}');
    return;
  }
  // Counted by the decoded path: proxies differ in how they write the same path ("!acme" or "%21acme").
  const raw = url.split('?')[0];
  let p = raw;
  try {
    p = decodeURIComponent(raw);
  } catch {
    // counted as sent
  }
  counts.total++;
  counts.byPath[p] = (counts.byPath[p] ?? 0) + 1;
  const kind = kindOf(p);
  counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
  /** @type {import('node:http').OutgoingHttpHeaders} */
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  const up = lib.request(
    {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port || undefined,
      path: base + url,
      method: req.method,
      headers,
      agent,
      timeout: timeoutMs,
    },
    (ur) => {
      /** @type {import('node:http').OutgoingHttpHeaders} */
      const out = {};
      for (const [k, v] of Object.entries(ur.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
      res.writeHead(ur.statusCode ?? 502, out);
      ur.on('data', (c) => (counts.bytes += c.length));
      ur.pipe(res);
      ur.on('error', () => res.destroy());
    },
  );
  up.on('timeout', () => up.destroy(new Error('upstream timed out')));
  up.on('error', (e) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = `relay: ${e.message}\n`;
    res.writeHead(502, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) });
    res.end(body);
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${/** @type {import('node:net').AddressInfo} */ (server.address()).port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    process.exit(0);
  });
}
