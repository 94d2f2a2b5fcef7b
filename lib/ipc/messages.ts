/**
 * @module The IPC vocabulary, one table per direction: master → worker, worker → master, and new master →
 * old master during a binary upgrade. Messages are plain JSON discriminated on `type`.
 */
import type { Config } from '../config/types.js';
import type { MetricsSnapshot } from '../metrics/snapshot.js';

/** A listening socket handed to a worker: its config key and the fd number it has in the worker. */
export interface ListenerFd {
  readonly key: string;
  readonly fd: number;
}

export type MasterToWorker =
  | { readonly type: 'start'; readonly generation: number; readonly config: Config; readonly listeners: readonly ListenerFd[] }
  /** Stop accepting and leave gracefully (DESIGN §4). */
  | { readonly type: 'drain' }
  /** Reopen log files (USR1). */
  | { readonly type: 'reopen' };

export interface WorkerStats {
  /** Open client connections (HTTP/1 sockets + HTTP/2 sessions + tunnels). */
  readonly connections: number;
  readonly requests: number;
  /** Cumulative counters, histograms and gauges for /metrics (lib/metrics/snapshot.ts). */
  readonly metrics?: MetricsSnapshot;
}

export type WorkerToMaster =
  | { readonly type: 'ready' }
  | { readonly type: 'stats'; readonly stats: WorkerStats }
  /** A start-up failure the master should log (then the worker exits). */
  | { readonly type: 'fatal'; readonly message: string };

/** A new master that fails simply exits: its exit, not a message, is what the old master acts on. */
export type NewMasterToOld = { readonly type: 'upgrade-ready'; readonly pid: number };

const WORKER_TYPES = new Set(['ready', 'stats', 'fatal']);
const MASTER_TYPES = new Set(['start', 'drain', 'reopen']);
const NEW_MASTER_TYPES = new Set(['upgrade-ready']);

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

/** Environment variable naming the worker's role, so `lib/cli` never parses worker argv. */
export const WORKER_ENV = 'BATON_WORKER';
/** Environment variable describing inherited listening sockets: JSON `{ "<address key>": <fd> }`. */
export const INHERIT_ENV = 'BATON_INHERITED_FDS';

