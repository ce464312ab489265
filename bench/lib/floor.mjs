#!/usr/bin/env node
// The node:http floor: the least a Node.js server can do for a warm hit. Serves the files listed
// in --paths (URL paths relative to --root) from memory, with headers like gomodproxy's
// (Content-Type, Content-Length, ETag, Cache-Control), keep-alive, no logging, no parsing beyond
// a Map lookup; N worker processes with node:cluster like `gomodproxy serve --workers N`.
// Compared with gomodproxy it shows how much of a gap to nginx is Node itself.
//
//   node bench/lib/floor.mjs --root <dir> --paths <file> --port <p> [--workers N]
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const root = path.resolve(arg('--root', '.'));
const port = Number(arg('--port', '0'));
const workers = Number(arg('--workers', '1'));
const types = { info: 'application/json', mod: 'text/plain; charset=utf-8', zip: 'application/zip' };

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const files = new Map();
  for (const p of readFileSync(arg('--paths'), 'utf8').split('\n')) {
    if (!p) continue;
    const data = readFileSync(path.join(root, p));
    const ext = p.slice(p.lastIndexOf('.') + 1);
    files.set(p, {
      data,
      headers: [
        'Content-Type',
        types[ext] ?? 'application/octet-stream',
        'Content-Length',
        String(data.length),
        'ETag',
        `"${data.length.toString(16)}"`,
        'Cache-Control',
        'public, max-age=31536000, immutable',
      ],
    });
  }
  files.set('/healthz', { data: Buffer.from('ok\n'), headers: ['Content-Type', 'text/plain', 'Content-Length', '3'] });
  const server = http.createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, (req, res) => {
    const f = files.get(req.url);
    if (!f) {
      res.writeHead(404, ['Content-Length', '10']);
      res.end('not found\n');
      return;
    }
    res.writeHead(200, f.headers);
    res.end(f.data);
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
