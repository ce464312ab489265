// Query resolution is the prefetch engine's (src/server/prefetch-query.ts), shared by the command
// and the server's jobs; this door stays for the command's own callers.
export * from '../server/prefetch-query.js';
