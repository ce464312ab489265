// A stand-in for test/helpers/s3.ts (being written beside the S3 store) with the same shape, so
// a test moves to it by changing one import: a real S3 server, versitygw's posix backend, on
// loopback on a free port, over a temporary folder whose sub-folders are the buckets (object
// <key> of bucket <b> is the file <dir>/<b>/<key>; multipart uploads in progress live under
// <dir>/<b>/.sgwtmp/multipart). Unlike s3.ts it never builds versitygw: the binary comes from
// $GMP_VERSITYGW or the per-machine test cache.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { makeTempDir, registerCleanup } from './tmp.js';

/** Where the CI script and s3.ts keep the built binary. */
export function versitygwBinary(): string {
  const bin = process.env.GMP_VERSITYGW ?? path.join(os.homedir(), '.cache', 'gomodproxy-test', 'bin', 'versitygw');
  if (!existsSync(bin)) throw new Error(`no versitygw at ${bin}: set GMP_VERSITYGW, or build it there (go install github.com/versity/versitygw/cmd/versitygw)`);
  return bin;
}

export interface TestS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** The backend folder: <dir>/<bucket>/<key> is an object's file. */
  dir: string;
  /** A client of this server, for looking behind a store's back. */
  client: S3Client;
  /** Creates a bucket (a fresh name unless given) and returns its name. */
  bucket(name?: string): Promise<string>;
  /** SIGTERM, then SIGKILL if it lingers; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: the server vanishes mid-whatever. */
  kill(): Promise<void>;
}

export async function startS3(): Promise<TestS3> {
  const bin = versitygwBinary();
  const dir = await makeTempDir('s3');
  const accessKey = `gmptest${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(18).toString('base64url');
  const region = 'us-east-1';
  // A port found free can be taken before versitygw binds it: it then exits, and another try gets another port.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    let stderr = '';
    const child = spawn(bin, ['--access', accessKey, '--secret', secretKey, '--region', region, '--port', `127.0.0.1:${port}`, '--quiet', 'posix', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-4000);
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
    const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey } });
    const kill = async (): Promise<void> => {
      if (gone()) return;
      child.kill('SIGKILL');
      await exited;
    };
    const stop = async (): Promise<void> => {
      client.destroy();
      if (gone()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    };
    registerCleanup(stop);
    if (!(await answering(endpoint, gone))) {
      await stop();
      if (attempt < 2) continue;
      throw new Error(`versitygw did not serve at ${endpoint}:\n${stderr}`);
    }
    let n = 0;
    return {
      endpoint,
      accessKey,
      secretKey,
      region,
      dir,
      client,
      bucket: async (name) => {
        const bucket = name ?? `gmp-${process.pid}-${++n}-${randomBytes(3).toString('hex')}`;
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        return bucket;
      },
      stop,
      kill,
    };
  }
}

/** Any HTTP answer (an unsigned request gets 403) means it serves; false if it exited first. */
async function answering(endpoint: string, gone: () => boolean): Promise<boolean> {
  // A hung start, not a slow one.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (gone()) return false;
    const ok = await fetch(endpoint).then(
      async (r) => {
        await r.arrayBuffer();
        return true;
      },
      () => false,
    );
    if (ok) return !gone();
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
