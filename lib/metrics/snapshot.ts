/**
 * @module What a worker sends the master (plain JSON over IPC): its cumulative counters and histograms since
 * it started, and its gauges now, keyed by family name and then by series key (see `labelKey`). And `Totals`,
 * the sum of such snapshots.
 */

export interface HistogramData {
  /** Per-bucket counts, NOT cumulative: one per bound of the family, then the +Inf bucket. */
  readonly buckets: readonly number[];
  /** Sum of the observed values (seconds). */
  readonly sum: number;
}

type Families<T> = Readonly<Record<string, Readonly<Record<string, T>>>>;

export interface MetricsSnapshot {
  /** Cumulative since the worker started: only ever grow. */
  readonly counters: Families<number>;
  readonly histograms: Families<HistogramData>;
  /** The value now (open connections): meaningful only while the worker lives. */
  readonly gauges: Families<number>;
}

export const EMPTY_SNAPSHOT: MetricsSnapshot = Object.freeze({ counters: {}, histograms: {}, gauges: {} });

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The shape check for what arrives over IPC (values are checked one by one when added). */
export function isSnapshot(x: unknown): x is MetricsSnapshot {
  return isRecord(x) && isRecord(x.counters) && isRecord(x.histograms) && isRecord(x.gauges);
}

interface MutableHistogram {
  buckets: number[];
  sum: number;
}

function series<T>(map: Map<string, Map<string, T>>, family: string): Map<string, T> {
  let s = map.get(family);
  if (s === undefined) {
    s = new Map();
    map.set(family, s);
  }
  return s;
}

function addScalars(into: Map<string, Map<string, number>>, from: Families<number>, factor: number): void {
  for (const family of Object.keys(from)) {
    const rows = from[family];
    if (!isRecord(rows)) continue;
    const target = series(into, family);
    for (const key of Object.keys(rows)) {
      const v = rows[key];
      if (typeof v === 'number' && Number.isFinite(v)) target.set(key, (target.get(key) ?? 0) + factor * v);
    }
  }
}

function validHistogram(h: unknown): h is HistogramData {
  if (!isRecord(h) || typeof h.sum !== 'number' || !Number.isFinite(h.sum) || !Array.isArray(h.buckets)) return false;
  for (const b of h.buckets) if (typeof b !== 'number' || !Number.isFinite(b)) return false;
  return true;
}

/** Sums of snapshots: counters and histograms add up, gauges only when asked (the live workers'). */
export class Totals {
  readonly counters = new Map<string, Map<string, number>>();
  readonly histograms = new Map<string, Map<string, MutableHistogram>>();
  readonly gauges = new Map<string, Map<string, number>>();

  /** Add `factor` × `s` (factor -1 takes an older snapshot of the same worker back out). */
  add(s: MetricsSnapshot, factor = 1, withGauges = false): this {
    addScalars(this.counters, s.counters, factor);
    if (withGauges) addScalars(this.gauges, s.gauges, factor);
    for (const family of Object.keys(s.histograms)) {
      const rows = s.histograms[family];
      if (!isRecord(rows)) continue;
      const target = series(this.histograms, family);
      for (const key of Object.keys(rows)) {
        const h = rows[key];
        if (!validHistogram(h)) continue;
        let acc = target.get(key);
        if (acc === undefined) {
          acc = { buckets: new Array<number>(h.buckets.length).fill(0), sum: 0 };
          target.set(key, acc);
        }
        // Different bounds cannot be merged: the series keeps the bounds it was first seen with.
        if (acc.buckets.length !== h.buckets.length) continue;
        for (let i = 0; i < h.buckets.length; i++) acc.buckets[i]! += factor * h.buckets[i]!;
        acc.sum += factor * h.sum;
      }
    }
    return this;
  }

  /** Add another total (e.g. the retired workers' into a fresh one). */
  addTotals(t: Totals): this {
    for (const [family, rows] of t.counters) {
      const target = series(this.counters, family);
      for (const [key, v] of rows) target.set(key, (target.get(key) ?? 0) + v);
    }
    for (const [family, rows] of t.gauges) {
      const target = series(this.gauges, family);
      for (const [key, v] of rows) target.set(key, (target.get(key) ?? 0) + v);
    }
    for (const [family, rows] of t.histograms) {
      const target = series(this.histograms, family);
      for (const [key, h] of rows) {
        const acc = target.get(key);
        if (acc === undefined) target.set(key, { buckets: h.buckets.slice(), sum: h.sum });
        else if (acc.buckets.length === h.buckets.length) {
          for (let i = 0; i < h.buckets.length; i++) acc.buckets[i]! += h.buckets[i]!;
          acc.sum += h.sum;
        }
      }
    }
    return this;
  }

  counter(family: string): ReadonlyMap<string, number> {
    return this.counters.get(family) ?? new Map();
  }

  gauge(family: string): ReadonlyMap<string, number> {
    return this.gauges.get(family) ?? new Map();
  }

  histogram(family: string): ReadonlyMap<string, HistogramData> {
    return this.histograms.get(family) ?? new Map();
  }
}
