// Preloaded into gomodproxy by bench/slowreaders.mjs (node --import <this file>; cluster workers
// inherit it): every process, primary and workers, appends its event-loop delay
// (perf_hooks.monitorEventLoopDelay, 10 ms resolution) every 500 ms as one JSON line to
// $BENCH_LOOP_DELAY_FILE, in ms beyond the 10 ms timer itself (which the histogram includes: an
// idle loop reads 0-2 ms here). A loop blocked for 10 s writes nothing for 10 s and then a line
// whose maxMs says so. Each line also has the event-loop utilization of its window (elu: the
// share of the time the loop was busy, not waiting for I/O) and process.memoryUsage() in MiB
// (arrayBuffers: the Buffers V8 has not collected yet, live or garbage; heapUsed; rss). Nothing
// else in the process changes.
import { appendFileSync } from 'node:fs';
import cluster from 'node:cluster';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const file = process.env.BENCH_LOOP_DELAY_FILE;
if (file) {
  const RES_MS = 10;
  const h = monitorEventLoopDelay({ resolution: RES_MS });
  const ms = (ns) => Math.max(0, ns / 1e6 - RES_MS);
  h.enable();
  const role = cluster.isPrimary ? 'primary' : 'worker';
  let elu = performance.eventLoopUtilization();
  setInterval(() => {
    const now = performance.eventLoopUtilization();
    const line = {
      pid: process.pid,
      role,
      t: Date.now(),
      maxMs: ms(h.max),
      p99Ms: ms(h.percentile(99)),
      meanMs: ms(h.mean),
      elu: performance.eventLoopUtilization(now, elu).utilization,
    };
    const mem = process.memoryUsage();
    line.arrayBuffersMiB = mem.arrayBuffers / 2 ** 20;
    line.heapUsedMiB = mem.heapUsed / 2 ** 20;
    line.rssMiB = mem.rss / 2 ** 20;
    elu = now;
    h.reset();
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // the benchmark's folder is gone: nothing to report to
    }
  }, 500).unref();
}
