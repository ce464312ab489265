// The BlobStore instances on several hosts share: an S3 (or S3-compatible) bucket. Object keys
// are the store keys under a prefix, so the bucket is itself a valid GOPROXY tree. A single PUT
// is atomic; a streamed write is a multipart upload completed only at commit, so nothing is ever
// visible at a key before commit, and an abort (or a crash) leaves no object behind.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ProxyError } from '../errors.js';
import { openCreating } from '../dirs.js';
import {
  assertSafeKey,
  storageError,
  storageFailureOf,
  type BlobReader,
  type BlobStat,
  type BlobStore,
  type BlobWrite,
  type ListedBlob,
  type StorageFailure,
} from './blobstore.js';

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without a leading slash; '' for the bucket's root. */
  prefix: string;
  /** An S3-compatible service's URL; default: AWS for the region. */
  endpoint?: string;
  region?: string;
  /** Address buckets as <endpoint>/<bucket> rather than <bucket>.<endpoint> (most S3-compatible services want this). */
  forcePathStyle?: boolean;
  /** Local folder of the staging files of streamed writes (readers on this host follow them). */
  stagingDir: string;
  /** For tests: explicit keys. Without them the SDK's default chain decides (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Bytes per part of a streamed write (at least 5 MiB, S3's minimum). */
  partSize?: number;
  timeouts?: {
    /** TCP (and TLS) connect. */
    connectMs?: number;
    /** From sending a small request (head, get, list, delete) to its response headers. */
    requestMs?: number;
    /** The same for uploads (a part, a put), per MiB sent on top of requestMs. */
    perMiBMs?: number;
    /** Longest silence on a connection, a response body streaming included. */
    idleMs?: number;
  };
  /** Tries per request, the first one included. */
  maxAttempts?: number;
}

/** What was learned of an S3 failure; the SDK's errors are not one class (network errors are plain Errors). */
interface S3Failure {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const MiB = 1 << 20;
// Two parts uploading at once per streamed write: the upstream is not paused for every part, and
// a write holds at most about three parts in memory (two sending, one filling).
const QUEUE_SIZE = 2;
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);
const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError']);

export class S3BlobStore implements BlobStore {
  readonly description: string;
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly root: string;
  readonly stagingDir: string;
  /** Told of every failed read or write (the server counts them against storage, not an upstream). */
  onError: ((op: 'read' | 'write', reason: StorageFailure) => void) | undefined;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly requestMs: number;
  private readonly perMiBMs: number;
  private readonly where: string;

  constructor(opts: S3BlobStoreOptions) {
    const prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
    if (prefix !== '') assertSafeKey(prefix);
    this.bucket = opts.bucket;
    this.root = prefix === '' ? '' : `${prefix}/`;
    this.description = `s3://${opts.bucket}/${prefix}`;
    this.stagingDir = path.resolve(opts.stagingDir);
    this.partSize = Math.max(opts.partSize ?? 8 * MiB, 5 * MiB);
    const t = opts.timeouts ?? {};
    this.requestMs = t.requestMs ?? 15_000;
    this.perMiBMs = t.perMiBMs ?? 2_000;
    // Where to look when it cannot be reached: the endpoint without any userinfo, or AWS's region.
    this.where = opts.endpoint ? `store.endpoint (${safeEndpoint(opts.endpoint)})` : `S3 in ${opts.region ?? 'us-east-1'}`;
    const config: S3ClientConfig = {
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? false,
      maxAttempts: opts.maxAttempts ?? 2,
      requestHandler: {
        connectionTimeout: t.connectMs ?? 5_000,
        // The client-wide bound is for the uploads lib-storage sends (a part); smaller requests pass their own.
        requestTimeout: this.requestMs + (this.perMiBMs * this.partSize) / MiB,
        throwOnRequestTimeout: true,
        socketTimeout: t.idleMs ?? 30_000,
      },
    };
    if (opts.endpoint) config.endpoint = opts.endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
  }

  /** The object key of a store key. */
  objectKey(key: string): string {
    assertSafeKey(key);
    return this.root + key;
  }

  async head(key: string): Promise<BlobStat | null> {
    const objectKey = this.objectKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), this.small());
      return { size: out.ContentLength ?? 0, etag: quoted(out.ETag), mtimeMs: mtimeOf(out.Metadata, out.LastModified) };
    } catch (err) {
      if (isMissing(err)) return null;
      throw this.fail(err, 'read');
    }
  }

  async get(key: string, opts: { start?: number } = {}): Promise<BlobReader | null> {
    const objectKey = this.objectKey(key);
    const start = opts.start ?? 0;
    let out;
    try {
      out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, ...(start > 0 ? { Range: `bytes=${start}-` } : {}) }),
        this.small(),
      );
    } catch (err) {
      if (isMissing(err)) return null;
      if (start > 0 && statusOf(err) === 416) {
        // Asked from the end (a follower that has sent everything already): nothing more to read.
        const st = await this.head(key);
        return st && bodyReader(Readable.from([]), st);
      }
      throw this.fail(err, 'read');
    }
    const body = out.Body;
    if (!(body instanceof Readable)) throw new ProxyError('internal', `the object store's answer for ${key} has no readable body`);
    const size = totalOfRange(out.ContentRange) ?? out.ContentLength ?? 0;
    return bodyReader(body, { size, etag: quoted(out.ETag), mtimeMs: mtimeOf(out.Metadata, out.LastModified) });
  }

  async getBuffer(key: string, maxBytes: number): Promise<{ stat: BlobStat; data: Buffer } | null> {
    const got = await this.get(key);
    if (!got) return null;
    if (got.size > maxBytes) {
      await got.close();
      throw new ProxyError('internal', `stored blob ${key} is ${got.size} bytes, more than the ${maxBytes} expected`);
    }
    const stat: BlobStat = { size: got.size, etag: got.etag, mtimeMs: got.mtimeMs };
    try {
      const chunks: Buffer[] = [];
      for await (const c of got.stream) chunks.push(c as Buffer);
      const data = Buffer.concat(chunks);
      if (data.length !== stat.size) throw new Error(`read ${data.length} of ${stat.size} bytes`);
      return { stat, data };
    } catch (err) {
      throw this.fail(err, 'read');
    } finally {
      await got.close();
    }
  }

  async put(key: string, data: Uint8Array): Promise<BlobStat> {
    const objectKey = this.objectKey(key);
    const mtimeMs = Date.now();
    try {
      const out = await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: data, ContentLength: data.length, Metadata: mtimeMetadata(mtimeMs) }),
        { requestTimeout: this.requestMs + (this.perMiBMs * data.length) / MiB },
      );
      if (out.ETag) return { size: data.length, etag: quoted(out.ETag), mtimeMs };
    } catch (err) {
      throw this.fail(err, 'write');
    }
    const st = await this.head(key);
    if (!st) throw this.fail(new Error('the object was not there right after it was written'), 'write');
    return st;
  }

  async beginWrite(key: string): Promise<BlobWrite> {
    const objectKey = this.objectKey(key);
    // Unique per write and flat in one folder: two writes of a key never share a file, and the
    // janitor's sweep of *.partial finds leftovers of a crash without walking module folders.
    const file = path.join(this.stagingDir, `${createHash('sha256').update(key).digest('hex').slice(0, 16)}-${randomBytes(6).toString('hex')}.partial`);
    let fh: FileHandle;
    try {
      fh = await openCreating(file, this.stagingDir);
    } catch (err) {
      throw this.fail(err, 'write');
    }
    return new StreamedWrite(this, this.client, fh, file, key, objectKey, this.partSize);
  }

  async delete(key: string): Promise<boolean> {
    const objectKey = this.objectKey(key);
    // S3 answers a delete the same whether or not there was an object: ask first.
    const existed = (await this.head(key)) !== null;
    if (!existed) return false;
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), this.small());
      return true;
    } catch (err) {
      throw this.fail(err, 'write');
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const b of this.listStats(prefix)) yield b.key;
  }

  async *listStats(prefix: string): AsyncIterable<ListedBlob> {
    // As a folder, like the disk store: "example.com/a" lists example.com/a/..., never example.com/ab.
    const clean = prefix.replace(/\/+$/, '');
    if (clean !== '') assertSafeKey(clean);
    const listPrefix = this.root + (clean === '' ? '' : `${clean}/`);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: listPrefix, ContinuationToken: token }), this.small());
      } catch (err) {
        throw this.fail(err, 'read');
      }
      for (const o of page.Contents ?? []) {
        // Folder markers (keys ending in /) that other tools create are not blobs.
        if (o.Key && !o.Key.endsWith('/')) yield { key: o.Key.slice(this.root.length), size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async checkWritable(): Promise<void> {
    const probe = this.objectKey(`state/.probe-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: 'ok' }), this.small());
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }), this.small());
    } catch (err) {
      throw this.fail(err, 'write');
    }
  }

  async presign(key: string, expiresInSeconds: number): Promise<string> {
    const objectKey = this.objectKey(key);
    try {
      return await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), { expiresIn: expiresInSeconds });
    } catch (err) {
      throw this.fail(err, 'read');
    }
  }

  /**
   * Aborts multipart uploads under the prefix started more than olderThanMs ago: what writers that
   * crashed mid-write left (their parts cost storage, though no object was made). A bucket
   * lifecycle rule (AbortIncompleteMultipartUpload) does the same without being asked.
   */
  /** Aborts the unfinished uploads of one key begun before `beforeMs`; never throws (a sweep picks up what it misses). */
  async abortUploadsBefore(key: string, beforeMs: number): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: objectKey }), this.small());
      for (const u of page.Uploads ?? []) {
        if (u.Key !== objectKey || !u.UploadId || (u.Initiated?.getTime() ?? Infinity) >= beforeMs) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: u.UploadId }), this.small());
      }
    } catch {
      // The periodic sweep (removeAbandonedWrites) is the backstop.
    }
  }

  async removeAbandonedWrites(olderThanMs: number, isLive?: (key: string) => Promise<boolean>): Promise<number> {
    const before = Date.now() - olderThanMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.root, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
          this.small(),
        );
        for (const u of page.Uploads ?? []) {
          if (!u.Key || !u.UploadId || !u.Key.startsWith(this.root)) continue;
          const old = (u.Initiated?.getTime() ?? 0) <= before;
          if (!old && (!isLive || (await isLive(u.Key.slice(this.root.length))))) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }), this.small());
          aborted++;
        }
        if (!page.IsTruncated) return aborted;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    } catch (err) {
      throw this.fail(err, 'write');
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }

  private small(): { requestTimeout: number } {
    return { requestTimeout: this.requestMs };
  }

  /** Storage trouble is ours: counted, and answered with the cause and the fix. */
  fail(err: unknown, op: 'read' | 'write'): ProxyError {
    if (err instanceof ProxyError) return err;
    const e = (err ?? {}) as S3Failure;
    const status = statusOf(err);
    // The staging file: the local disk's trouble, said as the disk store says it.
    if (status === undefined && e.code !== undefined && !UNREACHABLE.has(e.code)) {
      this.onError?.(op, storageFailureOf(err));
      return storageError(err, op);
    }
    const name = e.name && e.name !== 'Error' && e.name !== 'Unknown' ? e.name : undefined;
    if ((e.code !== undefined && UNREACHABLE.has(e.code)) || e.name === 'TimeoutError') {
      this.onError?.(op, 'io');
      return new ProxyError(
        'unavailable',
        `the object store at ${this.description} is unreachable (${e.code ?? e.name}); its operator must check that ${this.where} is up and reachable from this host, then retry`,
        { cause: err },
      );
    }
    if (status === 403 || (e.name !== undefined && DENIED.has(e.name))) {
      this.onError?.(op, 'permission');
      return new ProxyError(
        'unavailable',
        `gomodproxy may not ${op} the object store at ${this.description} (${name ?? 'HTTP 403'}); its operator must check its AWS credentials and the bucket's policy`,
        { cause: err },
      );
    }
    this.onError?.(op, 'io');
    if (e.name === 'NoSuchBucket') {
      return new ProxyError('unavailable', `the bucket ${this.bucket} does not exist at ${this.where}; its operator must create it or fix store.bucket`, {
        cause: err,
      });
    }
    const what = [name, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean).join(', ') || (err as Error).message;
    return new ProxyError('unavailable', `gomodproxy object store ${op} failed at ${this.description} (${what}); retry, and tell its operator if it persists`, {
      cause: err,
    });
  }
}

/**
 * A blob streaming into the bucket: each chunk goes to the local staging file (which readers on
 * this host follow) and into a multipart upload whose body stays open until commit, so S3 makes
 * the object only when the bytes are whole and checked.
 */
class StreamedWrite implements BlobWrite {
  private readonly body = new PassThrough();
  private readonly done: Promise<{ ETag?: string }>;
  /** Settles (never rejects) when the upload does; `failure` then says whether it failed. */
  private readonly settled: Promise<void>;
  private failure: { err: unknown } | undefined;
  private readonly mtimeMs = Date.now();
  private bytes = 0;
  private state: 'open' | 'committing' | 'committed' | 'dropped' = 'open';
  private committing: Promise<unknown> | undefined;
  private dropping: Promise<void> | undefined;

  constructor(
    private readonly store: S3BlobStore,
    client: S3Client,
    private readonly fh: FileHandle,
    readonly stagingFile: string,
    private readonly key: string,
    objectKey: string,
    partSize: number,
  ) {
    // Destroying the body is how a write is aborted; the upload sees that error, nobody else must.
    this.body.on('error', () => undefined);
    const upload = new Upload({
      client,
      params: { Bucket: store.bucket, Key: objectKey, Body: this.body, Metadata: mtimeMetadata(this.mtimeMs) },
      queueSize: QUEUE_SIZE,
      partSize,
      leavePartsOnError: false,
    });
    this.done = upload.done();
    this.settled = this.done.then(
      () => undefined,
      (err: unknown) => {
        this.failure = { err };
        // Nobody reads the body any more: a writer waiting for it to drain learns of the failure from its close.
        this.body.destroy();
      },
    );
  }

  async append(chunk: Buffer): Promise<void> {
    if (this.state !== 'open') throw new Error(`append to the write of ${this.key} after commit or abort`);
    this.throwIfFailed();
    try {
      await this.fh.write(chunk);
    } catch (err) {
      throw this.store.fail(err, 'write');
    }
    this.bytes += chunk.length;
    // The upload holds on to chunks until their part is sent: a copy lets the caller reuse its buffer, as with a file.
    if (!this.body.write(Buffer.from(chunk))) await drained(this.body);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.store.fail(this.failure.err, 'write');
  }

  commit(): Promise<BlobStat> {
    if (this.state !== 'open') return Promise.reject(new Error(`commit of the write of ${this.key} after commit or abort`));
    this.state = 'committing';
    const run = async (): Promise<BlobStat> => {
      try {
        await this.fh.close();
        this.body.end();
        const out = await this.done;
        this.state = 'committed';
        await rm(this.stagingFile, { force: true }).catch(() => undefined);
        // An upload of this key begun before ours was abandoned by a writer that died holding the
        // key (only the key's lock holder writes it): its parts go now, not at the next sweep.
        void this.store.abortUploadsBefore(this.key, this.mtimeMs - 1000);
        if (out.ETag) return { size: this.bytes, etag: quoted(out.ETag), mtimeMs: this.mtimeMs };
      } catch (err) {
        await this.drop();
        throw this.store.fail(err, 'write');
      }
      const st = await this.store.head(this.key);
      if (!st) throw this.store.fail(new Error('the object was not there right after its upload completed'), 'write');
      return st;
    };
    const p = run();
    this.committing = p.catch(() => undefined);
    return p;
  }

  async abort(): Promise<void> {
    // An abort during a commit (a caller giving up) leaves it to the commit: kept if it succeeds, dropped if not.
    if (this.state === 'committing') await this.committing;
    if (this.state === 'committed') return;
    await this.drop();
  }

  private drop(): Promise<void> {
    this.dropping ??= (async () => {
      this.state = 'dropped';
      // Ending the body with an error makes the upload abort its multipart upload (AbortMultipartUpload)
      // before it settles; lib-storage's own abort() would leave the parts behind while the body is open.
      this.body.destroy(new Error('write aborted'));
      await this.settled;
      await this.fh.close().catch(() => undefined);
      await rm(this.stagingFile, { force: true }).catch(() => undefined);
    })();
    return this.dropping;
  }
}

/** Waits until the body wants more, or is closed (the upload failed, or the write was aborted). */
function drained(body: PassThrough): Promise<void> {
  if (body.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      body.off('drain', done);
      body.off('close', done);
      resolve();
    };
    body.on('drain', done);
    body.on('close', done);
  });
}

function bodyReader(body: Readable, stat: BlobStat): BlobReader {
  let closed = false;
  return {
    ...stat,
    get stream(): Readable {
      return body;
    },
    close: () => {
      if (!closed) {
        closed = true;
        body.destroy();
      }
      return Promise.resolve();
    },
  };
}

// S3's LastModified has whole seconds; mutable answers compare store times, so each object carries its own in ms.
function mtimeMetadata(mtimeMs: number): Record<string, string> {
  return { mtime: String(mtimeMs) };
}

function mtimeOf(meta: Record<string, string> | undefined, lastModified: Date | undefined): number {
  const ms = Number(meta?.mtime);
  if (Number.isSafeInteger(ms) && ms > 0) return ms;
  return lastModified?.getTime() ?? 0;
}

function quoted(etag: string | undefined): string {
  if (!etag) return '""';
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/** The whole object's size from "bytes 100-199/200". */
function totalOfRange(contentRange: string | undefined): number | undefined {
  const m = contentRange ? /\/(\d+)$/.exec(contentRange) : null;
  return m ? Number(m[1]) : undefined;
}

function statusOf(err: unknown): number | undefined {
  return (err as S3Failure | undefined)?.$metadata?.httpStatusCode;
}

function isMissing(err: unknown): boolean {
  const name = (err as S3Failure | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(err) === 404 && name !== 'NoSuchBucket');
}

function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(an invalid URL)';
  }
}
