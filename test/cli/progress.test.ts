// The one progress printer of import and verify, with a fake clock: what a terminal and a log
// file show, exactly.
import { describe, expect, it } from 'vitest';
import { formatEta, progressPrinter } from '../../src/cli/progress.js';

function capture(bar: boolean): { p: ReturnType<typeof progressPrinter>; text: string[]; clock: { t: number } } {
  const text: string[] = [];
  const clock = { t: 1_000_000 };
  const p = progressPrinter({ command: 'import', verb: 'imported', bar, out: { write: (s: string) => text.push(s) }, now: () => clock.t });
  return { p, text, clock };
}

describe('progress on a terminal', () => {
  it('a bar with versions, bytes, rate and time left, redrawn in place and cleared at the end', () => {
    const { p, text, clock } = capture(true);
    p.update({ done: 0, total: 4, bytes: 0, totalBytes: 4 << 20 });
    clock.t += 2_000;
    p.update({ done: 1, total: 4, bytes: 1 << 20, totalBytes: 4 << 20 });
    // Ten redraws a second at most: this one is dropped.
    clock.t += 50;
    p.update({ done: 2, total: 4, bytes: 2 << 20, totalBytes: 4 << 20 });
    clock.t += 1_950;
    p.update({ done: 4, total: 4, bytes: 4 << 20, totalBytes: 4 << 20, bad: 1 });
    p.end();
    expect(text).toEqual([
      '\r[------------------------------] 0/4 versions, 0 B of 4.0 MiB\x1b[K',
      '\r[########----------------------] 1/4 versions, 1.0 MiB of 4.0 MiB, 512 KiB/s, ETA 6s\x1b[K',
      '\r[##############################] 4/4 versions, 4.0 MiB of 4.0 MiB, 1.0 MiB/s, 1 bad\x1b[K',
      '\r\x1b[K',
    ]);
  });
});

describe('progress elsewhere (a log, CI)', () => {
  it('a plain line every few seconds and at the end; the time left from the versions when the bytes are not known', () => {
    const { p, text, clock } = capture(false);
    p.update({ done: 0, total: 10, bytes: 0 });
    clock.t += 1_000;
    p.update({ done: 1, total: 10, bytes: 2048 });
    clock.t += 1_000;
    p.update({ done: 2, total: 10, bytes: 4096 });
    clock.t += 5_000;
    p.update({ done: 7, total: 10, bytes: 7 * 2048 });
    clock.t += 1_000;
    p.update({ done: 10, total: 10, bytes: 10 * 2048 });
    p.end();
    expect(text).toEqual([
      'import: 1/10 versions imported, 2.0 KiB, 2.0 KiB/s, about 9s left\n',
      'import: 7/10 versions imported, 14.0 KiB, 2.0 KiB/s, about 3s left\n',
      'import: 10/10 versions imported, 20.0 KiB, 2.5 KiB/s\n',
    ]);
  });

  it('formats the time left', () => {
    expect([formatEta(0), formatEta(42_400), formatEta(185_000), formatEta(7_380_000)]).toEqual(['0s', '42s', '3m05s', '2h03m']);
  });
});
