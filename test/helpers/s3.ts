// A real S3 server for a test: versitygw with its posix backend, on loopback on a free port, over
// a temporary folder whose sub-folders are the buckets (an object is the file
// <dir>/<bucket>/<key>). The binary comes from $GMP_VERSITYGW, else the per-machine test cache,
// where it is built with `go install` when absent (once per machine; CI does it up front).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { goToolBinary } from './gotool.js';
import { makeTempDir, registerCleanup } from './tmp.js';

export const VERSITYGW_MODULE = 'github.com/versity/versitygw/cmd/versitygw@v1.8.0';

/** The versitygw binary, built into the cache first when there is none (minutes, once). */
export function versitygwBinary(): Promise<string> {
  return goToolBinary({ name: 'versitygw', module: VERSITYGW_MODULE, envVar: 'GMP_VERSITYGW' });
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

/** A deadline for a hung start, not for a slow one: well inside the hook timeout. */
const START_TIMEOUT_MS = 60_000;

export async function startS3(): Promise<TestS3> {
  const bin = await versitygwBinary();
  const dir = await makeTempDir('s3');
  const accessKey = `gmptest${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(18).toString('base64url');
  const region = 'us-east-1';
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
  const stop = async (): Promise<void> => {
    client.destroy();
    if (gone()) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  };
  const kill = async (): Promise<void> => {
    if (gone()) return;
    child.kill('SIGKILL');
    await exited;
  };
  registerCleanup(stop);
  await waitUntilAnswering(endpoint, gone, () => stderr);
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

/** Any HTTP answer (an unsigned request gets 403) means it serves. */
async function waitUntilAnswering(endpoint: string, gone: () => boolean, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (gone()) throw new Error(`versitygw exited before serving:\n${stderr()}`);
    const ok = await fetch(endpoint).then(
      async (r) => {
        await r.arrayBuffer();
        return true;
      },
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`versitygw did not answer at ${endpoint} within ${START_TIMEOUT_MS / 1000} s:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}
