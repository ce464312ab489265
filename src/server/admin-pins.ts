// The pins of the admin API: what garbage collection never evicts, changed at run time.
//   GET    /-/api/pins                         every pin (the config's, then those added here)
//   POST   /-/api/pins {"pattern", "note"}     pins a module path or glob, optionally @version
//   DELETE /-/api/pins/<pattern>               unpins it (or DELETE /-/api/pins {"pattern"})
// They live in the store, so every worker and instance and the gc command see the same pins.
import type { PinStore } from '../catalog/index.js';
import { ProxyError } from '../errors.js';
import { sendJson, type AdminCall, type AdminEndpoint } from './admin.js';

export function pinEndpoints(pins: PinStore): AdminEndpoint[] {
  const unpin = async ({ ex }: AdminCall, pattern: string): Promise<void> => {
    ex.module = pattern;
    const gone = await pins.remove(pattern);
    if (!gone) throw new ProxyError('not-found', `${pattern} is not pinned; GET /-/api/pins lists the pins`);
    sendJson(ex, 200, { unpinned: gone });
  };
  const patternOf = (b: Record<string, unknown>): string => {
    if (typeof b.pattern !== 'string') {
      throw new ProxyError('bad-request', 'the body must be JSON with "pattern": a module path or GOPRIVATE-style glob, optionally @version');
    }
    return b.pattern;
  };
  return [
    {
      method: 'GET',
      path: /^pins$/,
      usage: 'use GET /-/api/pins to list the pins',
      run: async ({ ex }) => sendJson(ex, 200, { pins: await pins.list() }),
    },
    {
      method: 'POST',
      path: /^pins$/,
      usage: 'use POST /-/api/pins with {"pattern": "example.com/team/*", "note": "why"} to pin',
      run: async ({ ex, body }) => {
        const b = await body();
        const pattern = patternOf(b);
        if (b.note !== undefined && typeof b.note !== 'string') throw new ProxyError('bad-request', '"note" must be a string');
        ex.module = pattern;
        const opts: { note?: string; by?: string } = {};
        if (typeof b.note === 'string') opts.note = b.note;
        if (ex.user !== undefined) opts.by = ex.user;
        const { pin, created } = await pins.add(pattern, opts);
        sendJson(ex, created ? 201 : 200, { pinned: pin, created });
      },
    },
    {
      method: 'DELETE',
      path: /^pins\/(.+)$/,
      usage: 'use DELETE /-/api/pins/<pattern> to unpin',
      run: (call) => unpin(call, call.params[0] as string),
    },
    {
      method: 'DELETE',
      path: /^pins$/,
      usage: 'use DELETE /-/api/pins with {"pattern": "..."} to unpin',
      run: async (call) => unpin(call, patternOf(await call.body())),
    },
  ];
}
