/**
 * @module The IPC vocabulary, one table per direction: master → worker, worker → master, and between the old and
 * the new master during a binary upgrade. Messages are plain JSON discriminated on `type`.
 */
import type { Config } from '../config/types.js';
import type { MetricsSnapshot } from '../metrics/snapshot.js';
import type { ProcessSample } from '../metrics/process.js';

/** A listening socket handed to a worker: its config key and the fd number it has in the worker. */
export interface ListenerFd {
  readonly key: string;
  readonly fd: number;
}

/**
 * A worker asks for tokens of a daemon-wide rate limit (lib/worker/rate-limit.ts): limiter id, rate per second,
 * bucket capacity, key, tokens wanted, and tokens given back (negative: spent while the master did not answer).
 */
export type RateAsk = readonly [id: string, perSecond: number, capacity: number, key: string, want: number, back: number];
/** The master's answer to each ask, in order: tokens granted, and ms until the tokens wanted could be had. */
export type RateGrant = readonly [granted: number, waitMs: number];

export type MasterToWorker =
  | { readonly type: 'start'; readonly generation: number; readonly config: Config; readonly listeners: readonly ListenerFd[] }
  /** The answer to a `rate-lease` with the same `seq`. */
  | { readonly type: 'rate-grant'; readonly seq: number; readonly grants: readonly RateGrant[] }
  /** Stop accepting and leave gracefully (README, "Draining"). */
  | { readonly type: 'drain' }
  /** Reopen log files (USR1). */
  | { readonly type: 'reopen' };

/** One upstream target as a worker sees it now: passive marks and active checks together. */
export interface TargetHealth {
  /** `host:port`, as in the logs. */
  readonly target: string;
  readonly state: 'up' | 'down';
  /** When it entered this state (ISO 8601): the last change, or the worker's start. */
  readonly since: string;
  /** Why it is down, or why it came back; null when it has been up from the start. */
  readonly reason: string | null;
}

export interface UpstreamHealth {
  readonly name: string;
  readonly targets: readonly TargetHealth[];
}

export interface WorkerStats {
  /** Open client connections (HTTP/1 sockets + HTTP/2 sessions + tunnels). */
  readonly connections: number;
  readonly requests: number;
  /** Cumulative counters, histograms and gauges for /metrics (lib/metrics/snapshot.ts). */
  readonly metrics?: MetricsSnapshot;
  /** Memory, event loop and descriptors of the worker process. */
  readonly process?: ProcessSample;
  /** Its view of every upstream target. */
  readonly health?: readonly UpstreamHealth[];
}

export type WorkerToMaster =
  | { readonly type: 'ready' }
  | { readonly type: 'stats'; readonly stats: WorkerStats }
  /** A start-up failure the master should log (then the worker exits). */
  | { readonly type: 'fatal'; readonly message: string }
  /** The worker stopped accepting and drains before it exits (an uncaught exception): replace it now. */
  | { readonly type: 'retiring'; readonly reason: string }
  /** Tokens of daemon-wide rate limits, for several keys at once. */
  | { readonly type: 'rate-lease'; readonly seq: number; readonly asks: readonly RateAsk[] };

/** The new master tells the old one it serves, or why it cannot start (its stderr may be a closed terminal). */
export type NewMasterToOld =
  | { readonly type: 'upgrade-ready'; readonly pid: number }
  | { readonly type: 'upgrade-failed'; readonly pid: number; readonly reason: string }
  /** The new master asks for the rate-limit buckets, so that its workers go on where the old ones are. */
  | { readonly type: 'rate-buckets-request' };

export type OldMasterToNew =
  /** The old master stopped answering on the admin listener: the new one takes it (one master answers at a time). */
  | { readonly type: 'admin-handover' }
  /** The answer to `rate-buckets-request` (lib/master/rate-buckets.ts, BucketSnapshot). */
  | { readonly type: 'rate-buckets'; readonly buckets: unknown };

const WORKER_TYPES = new Set(['ready', 'stats', 'fatal', 'retiring', 'rate-lease']);
const MASTER_TYPES = new Set(['start', 'drain', 'reopen', 'rate-grant']);
const NEW_MASTER_TYPES = new Set(['upgrade-ready', 'upgrade-failed', 'rate-buckets-request']);
const OLD_MASTER_TYPES = new Set(['admin-handover', 'rate-buckets']);

function hasType(msg: unknown, types: Set<string>): boolean {
  return typeof msg === 'object' && msg !== null && types.has((msg as { type?: unknown }).type as string);
}

export function isWorkerToMaster(msg: unknown): msg is WorkerToMaster {
  return hasType(msg, WORKER_TYPES);
}

export function isMasterToWorker(msg: unknown): msg is MasterToWorker {
  return hasType(msg, MASTER_TYPES);
}

export function isNewMasterToOld(msg: unknown): msg is NewMasterToOld {
  return hasType(msg, NEW_MASTER_TYPES);
}

export function isOldMasterToNew(msg: unknown): msg is OldMasterToNew {
  return hasType(msg, OLD_MASTER_TYPES);
}

/** Environment variable describing inherited listening sockets: JSON `{ "<address key>": <fd> }`. */
export const INHERIT_ENV = 'BATON_INHERITED_FDS';
