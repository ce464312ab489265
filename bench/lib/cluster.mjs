// The pieces of a gomodproxy cluster on one machine, for bench/cluster.mjs: versitygw (a real S3
// server, posix backend), a redis-server of its own, gomodproxy instances started with a config
// file (each under a host name of its own, so they coordinate as instances on several hosts do),
// and nginx as their load balancer. Every process goes through lib/procs.mjs, so it is stopped
// at the end, on an error and on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { freePort, run, start, stopProc, treePids, waitHttp } from './procs.mjs';
import { CLI, REPO, serverEnv, serverPid, withTime } from './servers.mjs';

// The AWS SDK warns on every client it makes under Node 20; this process makes one per S3 server.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Where the test suite keeps its versitygw build (scripts/test-ci.sh builds it when absent). */
export function versitygwBinary() {
  const bin = process.env.GMP_VERSITYGW ?? path.join(os.homedir(), '.cache', 'gomodproxy-test', 'bin', 'versitygw');
  return existsSync(bin) ? bin : null;
}

/**
 * versitygw on a free loopback port over `dir` (a bucket is a folder of it, an object a file).
 * @param {string} runDir @param {string} name @param {string} dir
 */
export async function startS3(runDir, name, dir) {
  const bin = versitygwBinary();
  if (!bin)
    throw new Error('no versitygw: set GMP_VERSITYGW, or build it into ~/.cache/gomodproxy-test/bin (go install github.com/versity/versitygw/cmd/versitygw)');
  mkdirSync(dir, { recursive: true });
  const accessKey = `bench${randomBytes(4).toString('hex')}`;
  const secretKey = randomBytes(18).toString('base64url');
  const region = 'us-east-1';
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const h = start(name, bin, ['--access', accessKey, '--secret', secretKey, '--region', region, '--port', `127.0.0.1:${port}`, '--quiet', 'posix', dir], {
    stdout: path.join(runDir, `${name}.out`),
    stderr: path.join(runDir, `${name}.err`),
  });
  // Any HTTP answer (403 to an unsigned request) means it serves.
  await waitHttp(port, '/', { proc: h, status: 403, timeoutMs: 30000 });
  const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey } });
  return {
    name,
    h,
    pid: h.pid,
    port,
    endpoint,
    accessKey,
    secretKey,
    region,
    dir,
    client,
    only: /versitygw/,
    /** The credentials every instance gets through the standard AWS chain (its environment). */
    env: {
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
      AWS_REGION: region,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    /** @param {string} bucket */
    async bucket(bucket) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    /** Multipart uploads still open under a prefix. @param {string} bucket @param {string} prefix */
    async openUploads(bucket, prefix) {
      const out = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }));
      return (out.Uploads ?? []).map((u) => `${u.Key} (${u.UploadId})`);
    },
    async stop() {
      client.destroy();
      await stopProc(h, { graceMs: 3000 });
    },
  };
}

/** A redis-server of the benchmark's own: a free port, no persistence. @param {string} runDir @param {string} name */
export async function startRedis(runDir, name) {
  const port = await freePort();
  const h = start(name, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', runDir], {
    stdout: path.join(runDir, `${name}.out`),
    stderr: path.join(runDir, `${name}.err`),
  });
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    const ok = await r.connect().then(
      () => r.ping().then((p) => p === 'PONG'),
      () => false,
    );
    r.disconnect();
    if (ok) break;
    if (h.done || Date.now() > deadline) throw new Error(`redis-server did not start (see ${path.join(runDir, `${name}.out`)})`);
    await new Promise((res) => setTimeout(res, 50));
  }
  return { name, h, pid: h.pid, port, url, only: /redis/, stop: () => stopProc(h, { graceMs: 3000 }) };
}

/**
 * The YAML the instances of one cluster share (each adds its own --data). `shared`: 's3' (a
 * bucket and Redis), or 'fs' (one data folder on this host, lock files: what runs before the S3
 * store and the Redis coordination exist, and a reference).
 */
export function writeClusterConfig(file, { upstream, s3, bucket, prefix, redisUrl, redisPrefix, presign = false, extra = {} }) {
  const lines = [`upstream: ${JSON.stringify(upstream)}`];
  if (s3) {
    lines.push(
      'store:',
      '  type: s3',
      `  bucket: ${JSON.stringify(bucket)}`,
      `  prefix: ${JSON.stringify(prefix)}`,
      `  endpoint: ${JSON.stringify(s3.endpoint)}`,
      `  region: ${JSON.stringify(s3.region)}`,
      '  forcePathStyle: true',
    );
    if (presign) lines.push('  presignZips: true');
  }
  if (redisUrl) lines.push('redis:', `  url: ${JSON.stringify(redisUrl)}`, `  keyPrefix: ${JSON.stringify(redisPrefix)}`, '  lockTtl: 2s');
  // Instances die on purpose here: their upstream requests failing must not rest the upstream.
  lines.push('health:', '  failures: 1000');
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${JSON.stringify(v)}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const root = process.getuid?.() === 0;

/**
 * One gomodproxy instance (`serve --workers 1 --config <file>`), optionally under /usr/bin/time -v
 * and under a host name of its own (a UTS namespace, through unshare).
 */
export async function startInstance(runDir, name, { config, data, env = {}, hostname, timed = false }) {
  mkdirSync(data, { recursive: true });
  const port = await freePort();
  const timeFile = path.join(runDir, `${name}.time`);
  const args = [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--workers', '1', '--config', config, '--log-level', 'info'];
  let cmd = process.execPath;
  let argv = args;
  if (hostname) {
    cmd = 'unshare';
    argv = [...(root ? [] : ['-r']), '-u', 'sh', '-c', 'hostname "$0" && exec "$@"', hostname, process.execPath, ...args];
  }
  const [c, a] = timed ? withTime(timeFile, cmd, argv) : [cmd, argv];
  const h = start(name, c, a, {
    cwd: REPO,
    env: { ...serverEnv(), ...env, GOMODPROXY_INSTANCE_ID: name },
    stdout: path.join(runDir, `${name}.log`),
    stderr: path.join(runDir, `${name}.err`),
  });
  try {
    await waitHttp(port, '/healthz', { proc: h, timeoutMs: 60000 });
  } catch (err) {
    const tail = existsSync(path.join(runDir, `${name}.err`)) ? readFileSync(path.join(runDir, `${name}.err`), 'utf8').slice(-2000) : '';
    throw new Error(`${err.message}\n${name} stderr:\n${tail}`, { cause: err });
  }
  const pid = timed ? await serverPid(h) : h.pid;
  return { name, kind: 'gomodproxy', port, h, pid, data, timeFile, only: /^node/, url: `http://127.0.0.1:${port}` };
}

/** SIGKILL: the instance crashes. */
export async function killInstance(inst) {
  await stopProc(inst.h, { signal: 'SIGKILL', target: inst.pid, graceMs: 5000 });
}

/** nginx in front of instances: least_conn, the next instance on error/timeout/502/503, streamed (no buffering). */
export function lbConf(runDir, name, port, upstreams) {
  const tmp = path.join(runDir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return `# generated by bench/lib/cluster.mjs
daemon off;
master_process on;
${root ? `user ${os.userInfo().username};` : ''}
worker_processes 1;
pid ${path.join(runDir, `${name}.pid`)};
error_log ${path.join(runDir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  upstream gmp {
    zone gmp 64k;
    least_conn;
${upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=2s;`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://gmp;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      # With buffering off nginx relays through this one buffer: at its 4k/8k default a 1 MiB zip
      # costs hundreds of reads and writes.
      proxy_buffer_size 128k;
      proxy_buffers 4 128k;
      proxy_busy_buffers_size 256k;
    }
  }
}
`;
}

/** @param {string} runDir @param {string} name @param {string[]} upstreams host:port */
export async function startLb(runDir, name, upstreams) {
  const port = await freePort();
  const conf = path.join(runDir, `${name}.conf`);
  writeFileSync(conf, lbConf(runDir, name, port, upstreams));
  const t = await run('nginx -t', 'nginx', ['-t', '-q', '-c', conf, '-p', runDir, '-e', path.join(runDir, `${name}-error.log`)]);
  if (t.code !== 0) throw new Error(`nginx -t refused ${conf}: ${t.stderr}`);
  const h = start(name, 'nginx', ['-c', conf, '-p', runDir, '-e', path.join(runDir, `${name}-error.log`)], {
    cwd: runDir,
    stdout: path.join(runDir, `${name}.out`),
    stderr: path.join(runDir, `${name}.err`),
  });
  await waitHttp(port, '/healthz', { proc: h, timeoutMs: 15000 });
  for (let i = 0; i < 200 && treePids(h.pid).length < 2; i++) await new Promise((r) => setTimeout(r, 25));
  return { name, kind: 'nginx', port, h, pid: h.pid, only: /^nginx/, stop: () => stopProc(h, { signal: 'SIGQUIT', graceMs: 5000 }) };
}

/** Deletes every key under a prefix. @param {string} url @param {string} prefix */
export async function dropKeys(url, prefix) {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    // gone: nothing to clean
  } finally {
    r.disconnect();
  }
}

/** Peak resident memory of a live process (VmHWM), in MiB. */
export function vmHwmMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}
