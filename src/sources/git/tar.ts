// Reads the index of a tar file written by `git archive --format=tar`: each entry's name, type,
// size and where its data starts, without reading the data. ustar headers, pax extended headers
// (git uses them for long paths and link targets) and GNU long names are understood.
import { open } from 'node:fs/promises';

export type TarEntryType = 'file' | 'symlink' | 'dir' | 'other';

export interface TarEntry {
  name: string;
  type: TarEntryType;
  size: number;
  /** Offset of the data in the file. */
  offset: number;
}

const BLOCK = 512;

function cstring(buf: Buffer, start: number, len: number): Buffer {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return nul < 0 ? slice : slice.subarray(0, nul);
}

function octal(buf: Buffer, start: number, len: number): number {
  const field = buf.subarray(start, start + len);
  if ((field[0] as number) & 0x80) {
    // base-256 (GNU) for sizes that do not fit in octal digits
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] as number);
    return n;
  }
  const s = cstring(buf, start, len).toString('latin1').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(data.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = data.subarray(sp + 1, i + len - 1); // without the trailing \n
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1));
    i += len;
  }
  return out;
}

export class TarFormatError extends Error {}

/** Lists the entries of a tar file. */
export async function indexTar(file: string): Promise<TarEntry[]> {
  const fh = await open(file, 'r');
  try {
    const { size: total } = await fh.stat();
    const entries: TarEntry[] = [];
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let paxLocal: Map<string, Buffer> | undefined;
    let longName: Buffer | undefined;
    // Headers are read through a window of the file: one read covers the headers of many small files.
    const WINDOW = 1 << 20;
    let win = Buffer.alloc(0);
    let winAt = 0;
    const readAt = async (buf: Buffer, at: number): Promise<void> => {
      if (at >= winAt && at + buf.length <= winAt + win.length) {
        win.copy(buf, 0, at - winAt, at - winAt + buf.length);
        return;
      }
      if (buf.length > WINDOW) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        if (bytesRead !== buf.length) throw new TarFormatError('truncated tar file');
        return;
      }
      const fresh = Buffer.alloc(Math.min(WINDOW, total - at));
      const { bytesRead } = await fh.read(fresh, 0, fresh.length, at);
      win = fresh.subarray(0, bytesRead);
      winAt = at;
      if (bytesRead < buf.length) throw new TarFormatError('truncated tar file');
      win.copy(buf, 0, 0, buf.length);
    };
    while (pos + BLOCK <= total) {
      await readAt(header, pos);
      if (header.every((b) => b === 0)) break;
      const size = octal(header, 124, 12);
      const flag = String.fromCharCode(header[156] as number);
      const dataAt = pos + BLOCK;
      const next = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        const data = Buffer.alloc(size);
        if (size > 0) await readAt(data, dataAt);
        if (flag === 'x') paxLocal = parsePax(data);
        else if (flag === 'L') longName = cstring(data, 0, data.length);
        // 'g' (git's global header with the commit id) and 'K' (long link names) carry nothing we need.
        pos = next;
        continue;
      }
      let nameBytes: Buffer;
      const paxPath = paxLocal?.get('path');
      if (paxPath) nameBytes = paxPath;
      else if (longName) nameBytes = longName;
      else {
        const name = cstring(header, 0, 100);
        const magic = header.subarray(257, 262).toString('latin1');
        const prefix = magic === 'ustar' ? cstring(header, 345, 155) : Buffer.alloc(0);
        nameBytes = prefix.length > 0 ? Buffer.concat([prefix, Buffer.from('/'), name]) : name;
      }
      const paxSize = paxLocal?.get('size');
      const realSize = paxSize ? Number(paxSize.toString('latin1')) : size;
      paxLocal = undefined;
      longName = undefined;
      let type: TarEntryType;
      if (flag === '0' || flag === '\0' || flag === '7') type = 'file';
      else if (flag === '2') type = 'symlink';
      else if (flag === '5') type = 'dir';
      else type = 'other';
      entries.push({ name: nameBytes.toString('utf8'), type, size: type === 'file' ? realSize : 0, offset: dataAt });
      pos = paxSize ? dataAt + Math.ceil(realSize / BLOCK) * BLOCK : next;
    }
    return entries;
  } finally {
    await fh.close();
  }
}
