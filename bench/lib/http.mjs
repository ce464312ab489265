// Minimal HTTP client helpers for the benchmark (node:http, loopback only).
import http from 'node:http';

/**
 * GET `path` on 127.0.0.1:port; resolves with status, body bytes, wall time in ms and the time
 * to the response headers (ttfbMs). Rejects after `timeoutMs` without an answer (default 120 s).
 */
export function timedGet(port, path, agent, { timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const startNs = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port, path, agent: agent ?? false, timeout: timeoutMs }, (res) => {
      const ttfbMs = performance.now() - t0;
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () =>
        resolve({ status: res.statusCode, bytes, ms: performance.now() - t0, ttfbMs, headers: res.headers, startNs, endNs: process.hrtime.bigint() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
  });
}

export async function getJson(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(s));
          } catch (e) {
            reject(e);
          }
        });
      })
      .on('error', reject);
  });
}

/** Runs `fn(item)` over items with at most `n` in flight. */
export async function pool(items, n, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return results;
}

export function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const q = (p) => {
    if (s.length === 0) return NaN;
    const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
    return s[i];
  };
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, mean, p50: q(50), p90: q(90), p99: q(99), max: s[s.length - 1] ?? NaN };
}
