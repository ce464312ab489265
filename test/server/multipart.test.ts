// The streaming multipart reader of uploads: parts come out byte-exact however the body is cut
// into chunks (a delimiter split across two reads included), and a broken body is a 400.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ProxyError } from '../../src/errors.js';
import { multipartBoundary, readMultipart, type PartHeaders } from '../../src/server/multipart.js';

const BOUNDARY = '------------------------d74496d66958873e';

function body(parts: Array<{ name: string; filename?: string; data: Buffer }>, preamble = ''): Buffer {
  const chunks: Buffer[] = [Buffer.from(preamble)];
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disp}\r\nContent-Type: application/octet-stream\r\n\r\n`), p.data, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

async function* cut(data: Buffer, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function parse(data: Buffer, size: number): Promise<Array<PartHeaders & { data: Buffer }>> {
  const out: Array<PartHeaders & { data: Buffer }> = [];
  await readMultipart(cut(data, size), BOUNDARY, (h) => {
    const chunks: Buffer[] = [];
    return {
      write: (c) => {
        chunks.push(Buffer.from(c));
        return Promise.resolve();
      },
      end: () => {
        out.push({ ...h, data: Buffer.concat(chunks) });
        return Promise.resolve();
      },
    };
  });
  return out;
}

describe('readMultipart', () => {
  // Data that holds near-delimiters: a CRLF and dashes, a boundary without its CRLF.
  const zip = Buffer.concat([
    randomBytes(3000),
    Buffer.from(`\r\n--${BOUNDARY.slice(0, 20)}`),
    randomBytes(100),
    Buffer.from(`--${BOUNDARY}`),
    randomBytes(50),
  ]);
  const mod = Buffer.from('module corp.example/lib\n\ngo 1.21\n');
  const data = body(
    [
      { name: 'mod', filename: 'go.mod', data: mod },
      { name: 'zip', filename: 'module.zip', data: zip },
    ],
    'a preamble the reader skips\r\n',
  );

  for (const size of [1, 2, 3, 7, 64, 1000, data.length]) {
    it(`reads every part byte-exact in chunks of ${size}`, async () => {
      const parts = await parse(data, size);
      expect(parts.map((p) => [p.name, p.filename])).toEqual([
        ['mod', 'go.mod'],
        ['zip', 'module.zip'],
      ]);
      expect(parts[0]!.data.equals(mod)).toBe(true);
      expect(parts[1]!.data.equals(zip)).toBe(true);
    });
  }

  it('an empty part is a part', async () => {
    const parts = await parse(body([{ name: 'mod', data: Buffer.alloc(0) }]), 5);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.data.length).toBe(0);
  });

  it('a body cut before its closing boundary is a 400', async () => {
    const cutShort = data.subarray(0, data.length - 10);
    const err = await parse(cutShort, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBe(400);
    expect((err as ProxyError).message).toMatch(/ended before the closing boundary/);
  });

  it('a part without a name is a 400', async () => {
    const bad = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--${BOUNDARY}--\r\n`);
    await expect(parse(bad, 10)).rejects.toThrow(/no Content-Disposition name/);
  });

  it('finds the boundary in the Content-Type, quoted or not', () => {
    expect(multipartBoundary(`multipart/form-data; boundary=${BOUNDARY}`)).toBe(BOUNDARY);
    expect(multipartBoundary('multipart/form-data; boundary="a b"')).toBe('a b');
    expect(multipartBoundary('application/zip')).toBeUndefined();
    expect(multipartBoundary(undefined)).toBeUndefined();
    expect(() => multipartBoundary('multipart/form-data')).toThrow(/no boundary/);
  });
});
