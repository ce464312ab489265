// The one place that turns the `store` setting into a BlobStore, so nothing above the seam names
// a store class. An S3 store stages streamed writes in <data>/staging: local, swept by the
// janitor like every other *.partial of the data folder.
import path from 'node:path';
import type { Config } from '../config/index.js';
import type { BlobStore } from './blobstore.js';
import { FsBlobStore } from './fs.js';

/** The S3 client (tens of MB in every process) is loaded only where the store is S3. */
export async function createBlobStore(config: Pick<Config, 'data' | 'store'>): Promise<BlobStore> {
  const s = config.store;
  if (s.type === 'fs') return new FsBlobStore(config.data);
  const { S3BlobStore } = await import('./s3.js');
  return new S3BlobStore({
    bucket: s.bucket,
    prefix: s.prefix,
    region: s.region,
    forcePathStyle: s.forcePathStyle,
    ...(s.endpoint !== undefined ? { endpoint: s.endpoint } : {}),
    stagingDir: path.join(config.data, 'staging'),
  });
}
