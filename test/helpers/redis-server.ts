// Redis for tests: the machine's shared server (127.0.0.1:6379), used under a key prefix of the
// test's own that is removed afterwards, and redis-servers of a test's own (no persistence, a
// free port) that it can kill and start again on the same port to take Redis away from
// the instances and give it back.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import { makeTempDir, registerCleanup } from './tmp.js';

export const SHARED_REDIS_URL = process.env.GMP_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other run uses, whose keys are deleted by the test's cleanup. */
export function redisKeyPrefix(name: string, url = SHARED_REDIS_URL): string {
  const prefix = `gmp-test:${name}:${process.pid}-${randomBytes(4).toString('hex')}:`;
  registerCleanup(() => dropRedisKeys(url, prefix));
  return prefix;
}

/** Deletes every key under a prefix; a server that is not there has nothing to delete. */
export async function dropRedisKeys(url: string, prefix: string): Promise<number> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  let n = 0;
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) n += await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    // gone: nothing to clean
  } finally {
    r.disconnect();
  }
  return n;
}

/** Keys under a prefix right now (for tests that look behind the instances' back). */
export async function redisKeys(url: string, prefix: string): Promise<string[]> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  const out: string[] = [];
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return out;
}

export interface OwnRedis {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** SIGKILL: Redis vanishes under its clients. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: it keeps nothing). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server of the test's own on a free port, without persistence. */
export async function startOwnRedis(): Promise<OwnRedis> {
  const dir = await makeTempDir('redis');
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  const gone = (): boolean => !child || child.exitCode !== null || child.signalCode !== null;

  const launch = async (): Promise<boolean> => {
    stderr = '';
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    const collect = (b: Buffer): void => {
      stderr = (stderr + b.toString('utf8')).slice(-4000);
    };
    c.stdout!.on('data', collect);
    c.stderr!.on('data', collect);
    exited = new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.once('error', () => resolve());
    });
    // A hung start, not a slow one.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (gone()) return false;
      if (await answersPing(port)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };

  const kill = async (): Promise<void> => {
    if (gone()) return;
    child!.kill('SIGKILL');
    await exited;
  };
  registerCleanup(kill);

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    await kill();
    if (attempt >= 2) throw new Error(`redis-server did not start:\n${stderr}`);
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    async restart() {
      await kill();
      // The port was ours a moment ago; a restart on it is what a client reconnecting expects.
      for (let attempt = 0; attempt < 50; attempt++) {
        if (await launch()) return;
        await kill();
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`redis-server did not start again on port ${port}:\n${stderr}`);
    },
    async stop() {
      if (gone()) return;
      child!.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** One PING over a raw socket: +PONG means it serves. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (b) => done(b.toString('utf8').startsWith('+PONG')));
  });
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
