/**
 * @module What one process (master or worker) says about itself: resident memory, V8 heap, event-loop
 * utilization since the previous sample, and open file descriptors. Workers push it with their stats; the master
 * samples itself when scraped.
 */
import fs from 'node:fs';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

export interface ProcessSample {
  /** Resident set size, bytes. */
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  /** Share of the time since the previous sample the event loop was busy, 0..1. */
  readonly eventLoopUtilization: number;
  /** Entries of /proc/self/fd; null where there is no /proc. */
  readonly openFds: number | null;
}

function openFds(): number | null {
  try {
    // readdir holds one descriptor of its own while it reads.
    return fs.readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

export class ProcessSampler {
  #last: EventLoopUtilization = performance.eventLoopUtilization();

  sample(): ProcessSample {
    const now = performance.eventLoopUtilization();
    const elu = performance.eventLoopUtilization(now, this.#last).utilization;
    this.#last = now;
    const mem = process.memoryUsage();
    return { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, eventLoopUtilization: Number.isFinite(elu) ? elu : 0, openFds: openFds() };
  }
}

const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** The shape check for what arrives over IPC. */
export function isProcessSample(x: unknown): x is ProcessSample {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  return isNumber(s.rss) && isNumber(s.heapUsed) && isNumber(s.heapTotal) && isNumber(s.eventLoopUtilization) && (s.openFds === null || isNumber(s.openFds));
}
