// What prefetch is asked for is read by the server too (POST /-/api/prefetch, sync jobs): the
// parsing lives in src/server/prefetch-input.ts; this door stays for the command's own callers.
export * from '../server/prefetch-input.js';
