// Relaying what one worker process of a server learns to the others: remembered answers and
// invalidations. A worker sends to the primary, which passes it to every other worker. No
// process waits for it.
import type { Worker } from 'node:cluster';
import type { HostCoordination, Invalidation, StoreChange } from './coordination.js';
import { REMEMBER_MESSAGE, isRememberMessage } from './remembered.js';

export const INVALIDATE_MESSAGE = 'gomodproxy:invalidate';
export const STORE_CHANGE_MESSAGE = 'gomodproxy:stored';

interface InvalidateMessage {
  type: typeof INVALIDATE_MESSAGE;
  what: Invalidation;
}

function isInvalidateMessage(msg: unknown): msg is InvalidateMessage {
  const m = msg as Partial<InvalidateMessage> | null;
  return typeof m === 'object' && m !== null && m.type === INVALIDATE_MESSAGE && typeof m.what?.pattern === 'string';
}

interface StoreChangeMessage {
  type: typeof STORE_CHANGE_MESSAGE;
  changes: StoreChange[];
}

function isStoreChangeMessage(msg: unknown): msg is StoreChangeMessage {
  const m = msg as Partial<StoreChangeMessage> | null;
  return typeof m === 'object' && m !== null && m.type === STORE_CHANGE_MESSAGE && Array.isArray(m.changes);
}

function send(msg: unknown): void {
  try {
    process.send?.(msg);
  } catch {
    // The primary is gone (shutting down): what we learnt stays ours alone.
  }
}

/** In a worker: what is learnt here goes to the primary; what the primary passes on is taken. */
export function relayThroughPrimary(coordination: HostCoordination): void {
  coordination.answers.relayTo((key, answer) => send({ type: REMEMBER_MESSAGE, key, answer }));
  coordination.relayInvalidationsTo((what) => send({ type: INVALIDATE_MESSAGE, what }));
  coordination.relayStoreChangesTo((changes) => send({ type: STORE_CHANGE_MESSAGE, changes }));
  process.on('message', (msg: unknown) => {
    if (isRememberMessage(msg)) coordination.answers.remember(msg.key, msg.answer);
    else if (isInvalidateMessage(msg)) coordination.invalidated(msg.what);
    else if (isStoreChangeMessage(msg)) coordination.storeChanged(msg.changes);
  });
}

/** In the primary: passes a worker's message on to the others. Returns false for other messages. */
export function relayToWorkers(msg: unknown, from: Worker, workers: Iterable<Worker | undefined>): boolean {
  if (!isRememberMessage(msg) && !isInvalidateMessage(msg) && !isStoreChangeMessage(msg)) return false;
  for (const w of workers) {
    if (!w || w === from || !w.isConnected()) continue;
    try {
      w.send(msg);
    } catch {
      // That worker is exiting; a new one starts with nothing remembered, which is only slower.
    }
  }
  return true;
}
