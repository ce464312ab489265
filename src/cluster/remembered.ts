// Answers worth remembering for a short while so that asking again costs no upstream request:
// "not found" (the go command's package-to-module search asks for many paths that are not
// modules, and asks again) and "refused" (an upstream answer that failed our checks). Bounded,
// checked synchronously, and kept the same in every process: a process that learns one relays
// it (cluster workers through the primary), and the others take it as their own.

export interface RememberedAnswer {
  /** not-found and gone are the upstreams' 404/410; refused is an answer we would not keep. */
  kind: 'not-found' | 'gone' | 'refused';
  /** The one line the go user saw the first time. */
  message: string;
  /** When it was learnt and until when it holds (ms since the epoch). */
  at: number;
  until: number;
}

export type AnswerRelay = (key: string, answer: RememberedAnswer) => void;

const DEFAULT_MAX = 20_000;

export class RememberedAnswers {
  private readonly map = new Map<string, RememberedAnswer>();
  private relay: AnswerRelay | undefined;

  constructor(private readonly max = DEFAULT_MAX) {}

  /** Where answers learnt here are sent for the other processes. */
  relayTo(relay: AnswerRelay): void {
    this.relay = relay;
  }

  /** The answer for key if it still holds. */
  get(key: string, now = Date.now()): RememberedAnswer | undefined {
    const a = this.map.get(key);
    if (!a) return undefined;
    if (now < a.until) return a;
    this.map.delete(key);
    return undefined;
  }

  /** Remembers an answer learnt in this process and tells the others. */
  set(key: string, answer: RememberedAnswer): void {
    if (answer.until <= answer.at) return;
    this.remember(key, answer);
    this.relay?.(key, answer);
  }

  /** Takes an answer another process learnt. */
  remember(key: string, answer: RememberedAnswer): void {
    this.map.delete(key);
    this.map.set(key, answer);
    // Oldest first out: a Map iterates in insertion order.
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  /** Forgets key (it was found after all: a version published since). */
  delete(key: string): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }
}

/** The message a worker sends the primary, and the primary passes to every other worker. */
export const REMEMBER_MESSAGE = 'gomodproxy:remember';

export interface RememberMessage {
  type: typeof REMEMBER_MESSAGE;
  key: string;
  answer: RememberedAnswer;
}

export function isRememberMessage(msg: unknown): msg is RememberMessage {
  const m = msg as Partial<RememberMessage> | null;
  return typeof m === 'object' && m !== null && m.type === REMEMBER_MESSAGE && typeof m.key === 'string' && typeof m.answer === 'object';
}
