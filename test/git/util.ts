// Helpers shared by the git source tests.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { hashZipFile } from '../../src/modzip/index.js';
import type { ZipBody } from '../../src/sources/types.js';

/** The h1 of a zip body (written to a temporary file first, as a client would). */
export async function zipH1(body: ZipBody): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gmp-zip-'));
  try {
    const file = path.join(dir, 'm.zip');
    await pipeline(body.stream, createWriteStream(file));
    return await hashZipFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
