// The socket-level hit path (fasthits.ts) against node:http on the same app: every request
// sequence, sent byte for byte to both, gets the same bytes back (the Date header aside), whether
// the hit path answered it or handed the connection to node:http; and it did answer the plain hits.
import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupAll, registerCleanup } from '../helpers/tmp.js';
import { MOD, info, moduleZip, startCore, type Core } from './cachecore.js';

afterEach(cleanupAll);

const V = 'v1.0.0';
const GOMOD = Buffer.from(`module ${MOD}\n\ngo 1.21\n`);
const at = (kind: string, version = V): string => `/${MOD}/@v/${version}.${kind}`;

/**
 * Sends `parts` (a moment apart) on one connection, then a last request that asks the server to
 * close it; resolves with everything the server sent until it did.
 */
function exchange(port: number, parts: string[]): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('close', () =>
      resolve(
        Buffer.concat(got)
          .toString('latin1')
          .replace(/^Date: .*$/gm, 'Date: (now)'),
      ),
    );
    // A server that closed early resets what was still being sent: the close event follows.
    s.on('error', () => undefined);
    const send = async (): Promise<void> => {
      for (const p of [...parts, get('/healthz', 'Connection: close\r\n')]) {
        if (s.destroyed) return;
        s.write(p, 'latin1');
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    s.on('connect', () => void send());
  });
}

/** A core whose memory holds the .info, .mod and .zip of V, with the hit path listening beside node:http. */
async function filled(): Promise<{ core: Core; fast: number; node: number; etag: string }> {
  const core = await startCore();
  const zip = await moduleZip(V, { 'go.mod': GOMOD, 'm.go': 'package m\n' });
  core.source
    .on('info', V, info(V))
    .on('mod', V, GOMOD)
    .on('zip', V, () => Promise.resolve({ stream: Readable.from([zip.data]), size: zip.data.length }));
  for (const k of ['info', 'mod', 'zip']) expect((await core.get(at(k))).status).toBe(200);
  await core.drain();
  const etag = (await core.get(at('info'))).headers.etag as string;
  const port = async (fastHits: boolean): Promise<number> => {
    const server: Server = await core.app.listen('127.0.0.1', 0, { fastHits });
    // Closing waits for every connection: a client's close must end the server's side too.
    registerCleanup(() => new Promise<void>((r) => server.close(() => r())));
    return (server.address() as AddressInfo).port;
  };
  // The reference: the same app and server settings, every request through node:http.
  const node = await port(false);
  return { core, fast: await port(true), node, etag };
}

const get = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: proxy.test\r\nUser-Agent: Go-http-client/1.1\r\n${extra}\r\n`;

describe('hits answered off the socket', () => {
  it('the same bytes as node:http for every request sequence, handed off or not', async () => {
    const { core, fast, node, etag } = await filled();
    const cases: [string, string[], boolean, (() => void)?][] = [
      // [name, what the client sends, whether the hit path answers at least the first request, what to do first]
      ['a GET of each file', [get(at('info')), get(at('mod')), get(at('zip'))], true],
      ['pipelined in one write', [get(at('info')) + get(at('mod')) + `HEAD ${at('zip')} HTTP/1.1\r\nHost: h\r\n\r\n`], true],
      ['a request split byte by byte', [...get(at('mod'))], true],
      ['If-None-Match that matches, among others', [get(at('info'), `If-None-Match: "x", ${etag}\r\n`)], true],
      ['If-None-Match that does not', [get(at('info'), 'If-None-Match: "x"\r\n')], true],
      ['Connection: close', [get(at('info'), 'Connection: close\r\n'), get(at('mod'))], true],
      ['lower-case and odd-case header names', [`GET ${at('info')} HTTP/1.1\r\nhost: h\r\nCONNECTION: keep-alive\r\ncontent-length: 0\r\n\r\n`], true],
      ['a hit, then a malformed module path, then a hit (node:http from the second on)', [get(at('info')), get('/nope/@v/v1.0.0.info'), get(at('mod'))], true],
      [
        'pipelined in one write: a hit, a request node:http must answer, a hit',
        [get(at('info')) + get('/nope/@v/v1.0.0.info') + get(at('mod')) + get(at('zip'))],
        true,
      ],
      ['a hit, then a request with a body', [get(at('info')), `GET ${at('mod')} HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc`, get(at('info'))], true],
      ['HTTP/1.0', [`GET ${at('info')} HTTP/1.0\r\n\r\n`], false],
      ['no Host', [`GET ${at('info')} HTTP/1.1\r\n\r\n`], false],
      ['two Host headers', [`GET ${at('info')} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`], false],
      ['Transfer-Encoding', [`GET ${at('info')} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`], false],
      ['a folded header line', [`GET ${at('info')} HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n`], false],
      ['a header name with a space before the colon', [`GET ${at('info')} HTTP/1.1\r\nHost : a\r\n\r\n`], false],
      ['a bare LF in a value', [`GET ${at('info')} HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n`], false],
      ['lower-case method', [`get ${at('info')} HTTP/1.1\r\nHost: a\r\n\r\n`], false],
      ['POST', [`POST ${at('info')} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`], false],
      ['Range', [get(at('zip'), 'Range: bytes=0-9\r\n')], false],
      ['Authorization', [get(at('info'), 'Authorization: Basic dTpw\r\n')], false],
      ['a request head over 8 KiB', [get(at('info'), `X-Big: ${'a'.repeat(9000)}\r\n`)], false],
      // Each exchange finds it in the store only (the first puts it back in memory: dropped again before the second).
      ['a version in the store, not in memory', [get(at('mod'))], false, () => core.memory.delete(core.key(V, 'mod'))],
      ['the metrics and health endpoints', [get('/healthz'), get('/metrics')], false],
    ];
    for (const [name, parts, answered, first] of cases) {
      first?.();
      const before = core.app.fastHitsAnswered ?? 0;
      const viaFast = await exchange(fast, parts);
      const fastAnswered = (core.app.fastHitsAnswered ?? 0) - before;
      first?.();
      const viaNode = await exchange(node, parts);

      // Metrics bodies differ in their counts; their framing must not.
      const norm = (t: string): string => (name.startsWith('the metrics') ? t.replace(/\r\n\r\n[\s\S]*$/, '') : t);
      expect(norm(viaFast), name).toBe(norm(viaNode));
      expect(viaFast.length, name).toBeGreaterThan(0);
      if (answered) expect(fastAnswered, name).toBeGreaterThan(0);
      else expect(fastAnswered, name).toBe(0);
    }
  });

  it('a reader that takes its answers slowly gets every one of many pipelined zips whole, in order', async () => {
    const { core, fast } = await filled();
    const zip = (await core.get(at('zip'))).body;
    const n = 200;
    const body = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(fast, '127.0.0.1');
      const got: Buffer[] = [];
      s.on('connect', () => {
        s.write(Array.from({ length: n }, () => get(at('zip'))).join('') + get(at('info'), 'Connection: close\r\n'));
        s.pause();
        // Read in bursts, so that the server's writes back up.
        const tick = setInterval(() => {
          s.resume();
          setTimeout(() => s.pause(), 2);
        }, 10);
        s.on('close', () => {
          clearInterval(tick);
          resolve(Buffer.concat(got));
        });
      });
      s.on('data', (d: Buffer) => got.push(d));
      s.on('error', reject);
    });
    const text = body.toString('latin1');
    expect(text.split('HTTP/1.1 200 OK').length - 1).toBe(n + 1);
    // Each answer carries the zip whole.
    let at0 = 0;
    for (let i = 0; i < n; i++) {
      const head = body.indexOf('\r\n\r\n', at0) + 4;
      expect(body.subarray(head, head + zip.length).equals(zip), `answer ${i}`).toBe(true);
      at0 = head + zip.length;
    }
    expect(text.endsWith(info(V).toString('latin1'))).toBe(true);
  });
});
