// A writer that dies mid-write: begins a streamed write to S3, appends more than one part, says
// so on stdout (with its staging file) and waits to be killed. Credentials come from the SDK's
// default chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment).
import { S3BlobStore } from '../../../src/cache/s3.js';

const [endpoint, bucket, prefix, stagingDir, key] = process.argv.slice(2);
if (!endpoint || !bucket || prefix === undefined || !stagingDir || !key) throw new Error('usage: s3-writer <endpoint> <bucket> <prefix> <stagingDir> <key>');
const store = new S3BlobStore({ endpoint, bucket, prefix, stagingDir, forcePathStyle: true, region: 'us-east-1', partSize: 5 << 20 });
const w = await store.beginWrite(key);
for (let i = 0; i < 12; i++) await w.append(Buffer.alloc(1 << 20, i));
process.stdout.write(`appended ${w.stagingFile}\n`);
setInterval(() => undefined, 1000);
