// Relaying remembered answers between the worker processes of one server: a worker sends what
// it learnt to the primary, which passes it to every other worker. No process waits for it.
import type { Worker } from 'node:cluster';
import { REMEMBER_MESSAGE, isRememberMessage, type RememberedAnswers } from './remembered.js';

/** In a worker: answers learnt here go to the primary; answers from the primary are taken. */
export function relayThroughPrimary(answers: RememberedAnswers): void {
  answers.relayTo((key, answer) => {
    try {
      process.send?.({ type: REMEMBER_MESSAGE, key, answer });
    } catch {
      // The primary is gone (shutting down): the answer stays ours alone.
    }
  });
  process.on('message', (msg: unknown) => {
    if (isRememberMessage(msg)) answers.remember(msg.key, msg.answer);
  });
}

/** In the primary: passes a worker's answer on to the others. Returns false for other messages. */
export function relayToWorkers(msg: unknown, from: Worker, workers: Iterable<Worker | undefined>): boolean {
  if (!isRememberMessage(msg)) return false;
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
