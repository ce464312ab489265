#!/usr/bin/env node
// Slow HTTP readers for bench/slowreaders.mjs: `--count` raw TCP connections (node:net) to
// 127.0.0.1:--port, each sending one GET for --path and then reading the answer at --rate bytes
// per second, in one process.
//
//   node bench/lib/slowreader.mjs --port P --path /m/@v/v1.0.0.zip --stats-port S
//                                 [--count 200] [--rate 1024] [--chunk 1024]
//
// How a reader is slow: each socket reads into its own --chunk-byte buffer (net's `onread`
// option), so one read() takes at most that many bytes off the kernel; after each read the
// socket is paused (uv_read_stop) until the reader is back under its rate, counted from its
// connect. While it is paused the kernel receive buffer fills and the TCP window closes, so the
// server can push ahead only what the reader's receive buffer and its own send buffer hold.
// node:net cannot set SO_RCVBUF, so the receive buffer is the kernel's default (tcp_rmem[1]);
// a reader that reads slowly never makes the kernel grow it. bench/slowreaders.mjs measures how
// much the kernel holds (ss) beside what the server holds (RSS).
//
// GET http://127.0.0.1:S/stats answers the readers' state as JSON; GET /stop closes every
// reader and answers the final state. Readers are never closed by this process otherwise: a
// reader that ends before its whole body is "cut" (by the server).
import http from 'node:http';
import net from 'node:net';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const port = Number(arg('--port'));
const path = arg('--path');
const statsPort = Number(arg('--stats-port'));
const count = Number(arg('--count', '200'));
const rate = Number(arg('--rate', '1024'));
const chunk = Number(arg('--chunk', '1024'));
if (!port || !path || !statsPort || !(count > 0) || !(rate > 0) || !(chunk > 0)) {
  process.stderr.write('usage: slowreader.mjs --port P --path /x.zip --stats-port S [--count N] [--rate B/s] [--chunk B]\n');
  process.exit(2);
}

const t0 = performance.now();
let stopping = false;
const readers = [];

function startReader(i) {
  const r = {
    i,
    state: 'connecting',
    connectMs: null,
    headersMs: null,
    endMs: null,
    status: null,
    length: null,
    received: 0,
    body: 0,
    error: null,
    sock: null,
    tStart: performance.now(),
  };
  let head = '';
  const onread = (n, buf) => {
    r.received += n;
    if (r.headersMs === null) {
      head += buf.toString('latin1', 0, n);
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0) {
        r.headersMs = performance.now() - r.tStart;
        r.status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end));
        r.length = len ? Number(len[1]) : null;
        r.body = head.length - end - 4;
        r.state = 'reading';
        head = '';
      }
    } else {
      r.body += n;
    }
    if (r.length !== null && r.body >= r.length) {
      r.state = 'done';
      r.endMs = performance.now() - r.tStart;
      sock.end();
      return true;
    }
    // Back under the rate: read on; else pause until then.
    const wait = r.tStart + (1000 * r.received) / rate - performance.now();
    if (wait <= 0) return true;
    setTimeout(() => {
      if (!sock.destroyed) sock.resume();
    }, wait);
    return false;
  };
  const sock = net.connect({ host: '127.0.0.1', port, onread: { buffer: Buffer.alloc(chunk), callback: onread } });
  r.sock = sock;
  sock.on('connect', () => {
    r.state = 'connected';
    r.connectMs = performance.now() - r.tStart;
    sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: gomodproxy-bench-slowreader\r\nConnection: close\r\n\r\n`);
  });
  sock.on('error', (/** @type {NodeJS.ErrnoException} */ e) => {
    r.error = e.code ?? e.message;
  });
  sock.on('close', () => {
    if (r.state === 'done') return;
    r.endMs = performance.now() - r.tStart;
    r.state = stopping ? 'stopped' : 'cut';
  });
  readers.push(r);
}

function stats(xs) {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (!s.length) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  return { n: s.length, min: s[0], p50: q(50), p99: q(99), max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length };
}

function summary() {
  const byState = {};
  for (const r of readers) byState[r.state] = (byState[r.state] ?? 0) + 1;
  const statuses = {};
  for (const r of readers) if (r.status !== null) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const errors = {};
  for (const r of readers) if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
  const cut = readers.filter((r) => r.state === 'cut');
  return {
    seconds: (performance.now() - t0) / 1000,
    count: readers.length,
    rate,
    chunk,
    byState,
    connected: readers.filter((r) => r.connectMs !== null).length,
    gotHeaders: readers.filter((r) => r.headersMs !== null).length,
    // Still connected and reading (not cut, not finished).
    open: readers.filter((r) => r.state === 'reading' || r.state === 'connected' || r.state === 'connecting').length,
    cut: cut.length,
    cutSamples: cut.slice(0, 5).map((r) => ({ i: r.i, status: r.status, body: r.body, atMs: Math.round(r.endMs), error: r.error })),
    statuses,
    errors,
    connectMs: stats(readers.map((r) => r.connectMs)),
    headersMs: stats(readers.map((r) => r.headersMs)),
    bodyBytes: stats(readers.map((r) => r.body)),
    contentLength: readers.find((r) => r.length !== null)?.length ?? null,
  };
}

const server = http.createServer((req, res) => {
  if (req.url === '/stop') {
    stopping = true;
    for (const r of readers) r.sock.destroy();
    // The close events run on the next ticks.
    setTimeout(() => {
      res.end(JSON.stringify(summary()));
      setTimeout(() => process.exit(0), 50);
    }, 50);
    return;
  }
  res.end(JSON.stringify(summary()));
});
server.listen(statsPort, '127.0.0.1', () => {
  for (let i = 0; i < count; i++) startReader(i);
});
