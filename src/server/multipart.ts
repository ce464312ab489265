// A streaming reader of multipart/form-data bodies (RFC 7578), for uploads that pair a small
// part with a large one (`curl -F mod=@go.mod -F zip=@module.zip`): each part's bytes go to its
// sink as they arrive, with the sink's backpressure, so a 500 MiB zip never sits in memory.
import { ProxyError } from '../errors.js';

export interface PartHeaders {
  /** The form field's name (Content-Disposition name=). */
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
}

export interface PartSink {
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
}

const MAX_HEADER_BYTES = 8 << 10;
const MAX_PARTS = 16;
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary of a multipart/form-data Content-Type, or undefined when it is not one. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  const b = m?.[1] ?? m?.[2];
  if (!b) throw new ProxyError('bad-request', 'the multipart/form-data Content-Type has no boundary');
  return b;
}

/**
 * Reads a multipart body, asking `open` for a sink per part (it throws to refuse a part).
 * Throws a 400 for a malformed body, one that ends early, or more than a handful of parts.
 */
export async function readMultipart(body: AsyncIterable<Buffer | string>, boundary: string, open: (h: PartHeaders) => PartSink): Promise<void> {
  // The body's first delimiter may come without the CRLF before it: pretend it had one.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.from('\r\n');
  // Widened by hand: TS cannot see the closure below change it.
  let state = 'preamble' as 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done';
  let sink: PartSink | undefined;
  let parts = 0;

  const bad = (why: string): ProxyError => new ProxyError('bad-request', `malformed multipart/form-data body: ${why}`);

  const step = async (): Promise<boolean> => {
    switch (state) {
      case 'preamble': {
        const i = buf.indexOf(delimiter);
        if (i < 0) {
          // Keep what could be the start of a delimiter.
          buf = buf.subarray(Math.max(0, buf.length - delimiter.length + 1));
          return false;
        }
        buf = buf.subarray(i + delimiter.length);
        state = 'after-delimiter';
        return true;
      }
      case 'after-delimiter': {
        if (buf.length < 2) return false;
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          state = 'done';
          return false;
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        const crlf = buf.indexOf('\r\n');
        if (crlf < 0) {
          if (buf.length > 256) throw bad('no line break after a boundary');
          return false;
        }
        if (!/^[ \t]*$/.test(buf.subarray(0, crlf).toString('latin1'))) throw bad('junk after a boundary');
        buf = buf.subarray(crlf + 2);
        state = 'headers';
        return true;
      }
      case 'headers': {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) throw bad('a part has more than 8 KiB of headers');
          return false;
        }
        if (++parts > MAX_PARTS) throw bad(`more than ${MAX_PARTS} parts`);
        const headers = parseHeaders(buf.subarray(0, end).toString('utf8'), bad);
        buf = buf.subarray(end + HEADER_END.length);
        sink = open(headers);
        state = 'body';
        return true;
      }
      case 'body': {
        const i = buf.indexOf(delimiter);
        if (i >= 0) {
          if (i > 0) await (sink as PartSink).write(buf.subarray(0, i));
          await (sink as PartSink).end();
          sink = undefined;
          buf = buf.subarray(i + delimiter.length);
          state = 'after-delimiter';
          return true;
        }
        // What could be the start of the next delimiter waits for the next chunk.
        const keep = delimiter.length - 1;
        if (buf.length > keep) {
          const out = buf.subarray(0, buf.length - keep);
          buf = buf.subarray(buf.length - keep);
          await (sink as PartSink).write(Buffer.from(out));
        }
        return false;
      }
      case 'done':
        return false;
    }
  };

  for await (const c of body) {
    if (state === 'done') continue;
    const chunk = typeof c === 'string' ? Buffer.from(c) : c;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (await step());
  }
  if (state !== 'done') throw bad('the body ended before the closing boundary (is the upload complete?)');
}

function parseHeaders(text: string, bad: (why: string) => ProxyError): PartHeaders {
  let name: string | undefined;
  let filename: string | undefined;
  let contentType: string | undefined;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) throw bad(`a part header without a colon: ${JSON.stringify(line.slice(0, 80))}`);
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') {
      if (!/^form-data\s*(;|$)/i.test(value)) throw bad('a part is not form-data');
      name = param(value, 'name');
      filename = param(value, 'filename');
    } else if (key === 'content-type') {
      contentType = value;
    }
  }
  if (name === undefined) throw bad('a part has no Content-Disposition name');
  return { name, filename, contentType };
}

function param(value: string, key: string): string | undefined {
  const m = new RegExp(`;\\s*${key}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s;]+))`, 'i').exec(value);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}
