// An upstream that closes the connection after each body (HTTP/1.0, `Connection: close`: Python's
// http.server, many corporate proxies) while gomodproxy reads the body slower than it arrives.
// undici 7 asserted `!this.paused` in Parser.finish on that FIN and took the whole process down
// (nodejs/undici#5360); patches/undici+7.30.2.patch carries the upstream fix. If the patch is
// missing, this file's worker crashes and the run fails.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProxySource } from '../../src/sources/proxy.js';
import type { UpstreamSpec } from '../../src/config/index.js';

const BODY = Buffer.alloc(2_000_000);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 2654435761) >>> 24;
const SUM = createHash('sha256').update(BODY).digest('hex');

let server: net.Server;
let url: string;
let served = 0;
// The assertion fired from a socket 'end' handler: no promise sees it, only the process.
const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => {
  uncaught.push(err);
};

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  // A raw socket server, so the framing is exactly what such upstreams send: HTTP/1.0, a length,
  // the body, then FIN (and for `/eof`, no length at all: the body ends where the connection does).
  server = net.createServer((sock) => {
    sock.once('data', (req) => {
      served++;
      const eof = req.toString('latin1').startsWith('GET /eof/');
      sock.write(`HTTP/1.0 200 OK\r\nContent-Type: application/zip\r\n${eof ? '' : `Content-Length: ${BODY.length}\r\n`}Connection: close\r\n\r\n`);
      // In pieces, as a file server copies a file: the FIN then often arrives just as the reader pauses.
      void (async () => {
        for (let o = 0; o < BODY.length; o += 64 * 1024) {
          if (!sock.write(BODY.subarray(o, o + 64 * 1024))) await new Promise((r) => sock.once('drain', r));
        }
        sock.end();
      })();
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function spec(base: string): UpstreamSpec {
  return {
    kind: 'proxy',
    url: base,
    priority: 0,
    balance: 'failover',
    fallthrough: 'not-found',
    timeouts: { connect: 5_000, firstByte: 10_000, idle: 10_000 },
  };
}

let seed = 1;

/** Reads a body the way a busy fetch does: every few chunks, the consumer is elsewhere for a moment. */
async function slowRead(stream: AsyncIterable<Buffer>): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) {
    h.update(chunk);
    // About one chunk in three (a fixed pseudo-random sequence, the same every run).
    seed = (seed * 1103515245 + 12345) >>> 0;
    if (seed % 10 < 3) await sleep(1);
  }
  return h.digest('hex');
}

describe('an upstream that closes the connection after the body', () => {
  for (const framing of ['content-length', 'eof'] as const) {
    test(`30 concurrent slow readers, 5 rounds, ${framing} framing: no crash, every body whole`, async () => {
      const source = new ProxySource(spec(framing === 'eof' ? `${url}/eof` : url));
      const before = served;
      try {
        for (let round = 0; round < 5; round++) {
          const sums = await Promise.all(
            Array.from({ length: 30 }, async (_v, i) => {
              const body = await source.zip(
                { path: 'example.com/m', escaped: 'example.com/m' },
                { version: `v1.0.${round * 30 + i}`, escaped: `v1.0.${round * 30 + i}` },
                { via: 'test' },
              );
              expect(body.size).toBe(framing === 'eof' ? undefined : BODY.length);
              return slowRead(body.stream);
            }),
          );
          expect(new Set(sums)).toEqual(new Set([SUM]));
        }
      } finally {
        await source.close();
      }
      expect(served - before).toBe(150);
      expect(uncaught).toEqual([]);
    });
  }
});
