// Runs garbage collection on the configured schedule (gc.schedule, cron syntax). Every process
// that schedules it fires at the same moments; the store's gc lock lets one of them collect and
// the others see a run that began a moment ago and skip theirs, so a cluster of workers, or of
// instances over one store, collects once per tick. Kept apart from the collector so it can
// move onto a shared scheduler of jobs without touching it.
import { Cron } from 'croner';
import type { Logger } from 'pino';
import { GcBusyError, type GarbageCollector, type GcReport } from './gc.js';

export interface ScheduledGc {
  nextRun(): Date | null;
  stop(): void;
}

/** How long before a tick a run elsewhere counts as this tick's: half the gap to the next tick, at most a minute. */
function sameTickMs(job: Cron): number {
  const next = job.nextRun();
  const gap = next ? next.getTime() - Date.now() : 60_000;
  return Math.max(0, Math.min(60_000, gap / 2));
}

export function scheduleGc(gc: GarbageCollector, cron: string, log: Logger, onRun?: (report: GcReport) => void): ScheduledGc {
  const job = new Cron(cron, { protect: true, unref: true }, async () => {
    try {
      const report = await gc.run({ trigger: 'schedule', unlessRanWithinMs: sameTickMs(job) });
      if (report) onRun?.(report);
    } catch (err) {
      if (err instanceof GcBusyError) {
        log.debug('scheduled garbage collection skipped: another process is collecting');
        return;
      }
      log.error({ err }, 'scheduled garbage collection failed');
    }
  });
  gc.scheduled(cron, () => job.nextRun());
  return { nextRun: () => job.nextRun(), stop: () => job.stop() };
}
