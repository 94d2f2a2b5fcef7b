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

// ---- hand-off: a connection's descriptor moving from a draining worker to a serving one ---------------------------

/** What a hand-off moves: an idle HTTP/1.1 keep-alive connection, or a WebSocket tunnel (two sockets). */
export type HandoffKind = 'http1' | 'websocket';

/**
 * Why a hand-off did not happen, one table for the worker's counters, the master's relay and the logs.
 * no_receiver: no ready worker serves that cleartext listener; refused: the receiver would not take it (draining,
 * listener gone or now TLS); ipc: a message could not be sent; receiver_gone: the receiver's channel closed before
 * it answered; unflushed: a tunnel still had bytes to write after the flush bound; unknown: no answer that can be
 * trusted (a master on the way left, or no answer in time): the sender closes its copy, it never serves it again.
 */
export const HANDOFF_FAILURES = ['no_receiver', 'refused', 'ipc', 'receiver_gone', 'unflushed', 'unknown'] as const;
export type HandoffFailure = (typeof HANDOFF_FAILURES)[number];

/** What a moved WebSocket tunnel's access-log line and counts need, besides its two sockets. */
export interface TunnelState {
  readonly client: string;
  readonly host: string;
  /** The request target of the handshake, as received. */
  readonly path: string;
  readonly requestId: string;
  /** The route's label (host or `*`, then path), looked up again in the receiver's config. */
  readonly route: string | null;
  readonly upstream: string;
  /** The target's `host:port`. */
  readonly target: string;
  /** When the handshake arrived (ms since the epoch: clocks of other processes differ in origin only). */
  readonly startedAt: number;
  /** Bytes already written to the client by the workers it went through. */
  readonly bytes: number;
}

/**
 * One socket of a connection being handed over, sent with its descriptor: worker → master → (the other master
 * during an upgrade) → worker. A WebSocket tunnel is two parts, upstream first, then client with `tunnel`.
 */
export interface HandoffOffer {
  readonly type: 'handoff';
  /** Unique along the whole path: the sender's pid and a sequence number. */
  readonly id: string;
  readonly kind: HandoffKind;
  /** The listener's address key: the receiver serves the connection on its server for that listener. */
  readonly listener: string;
  readonly part: number;
  readonly parts: number;
  readonly tunnel?: TunnelState;
  /**
   * The client as the sender knew it (from a PROXY header, or `unix:` on a unix listener): the receiver adopts it
   * and never reads a PROXY header on that connection again. Absent: the TCP peer is the client.
   */
  readonly peer?: HandoffPeer;
}

/** A client address carried along a hand-off (the worker's ProxiedPeer, as it crosses the IPC channel). */
export interface HandoffPeer {
  readonly address: string;
  readonly port?: number;
  readonly family: 'IPv4' | 'IPv6' | 'unix';
}

/**
 * The receiver's answer, relayed back to the sender. `taken` is sent before the receiver reads a byte, so that a
 * receiver that dies unread is seen as gone (`failed`): then, and only then, the sender serves the connection again.
 */
export type HandoffResult =
  | { readonly type: 'handoff-result'; readonly id: string; readonly outcome: 'taken' }
  | { readonly type: 'handoff-result'; readonly id: string; readonly outcome: 'failed' | 'unknown'; readonly reason: HandoffFailure };

export type HandoffMessage = HandoffOffer | HandoffResult;

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
  /**
   * Stop accepting and leave gracefully (README, "Draining"). `handoff`: a serving worker may take this worker's
   * connections now (another generation is active, or the other master of an upgrade serves).
   */
  | { readonly type: 'drain'; readonly handoff?: boolean }
  | HandoffMessage
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
  | HandoffMessage
  /** Tokens of daemon-wide rate limits, for several keys at once. */
  | { readonly type: 'rate-lease'; readonly seq: number; readonly asks: readonly RateAsk[] };

/** The new master tells the old one it serves, or why it cannot start (its stderr may be a closed terminal). */
export type NewMasterToOld =
  | { readonly type: 'upgrade-ready'; readonly pid: number }
  | { readonly type: 'upgrade-failed'; readonly pid: number; readonly reason: string }
  /** Hand-offs go both ways between the two masters of an upgrade (the rollback goes back to the old one). */
  | HandoffMessage
  /** The new master asks for the rate-limit buckets, so that its workers go on where the old ones are. */
  | { readonly type: 'rate-buckets-request' };

export type OldMasterToNew =
  /** The old master stopped answering on the admin listener: the new one takes it (one master answers at a time). */
  | { readonly type: 'admin-handover' }
  /** The answer to `rate-buckets-request` (lib/master/rate-buckets.ts, BucketSnapshot). */
  | { readonly type: 'rate-buckets'; readonly buckets: unknown }
  | HandoffMessage;

const HANDOFF_TYPES = ['handoff', 'handoff-result'];
const WORKER_TYPES = new Set(['ready', 'stats', 'fatal', 'retiring', 'rate-lease', ...HANDOFF_TYPES]);
const MASTER_TYPES = new Set(['start', 'drain', 'reopen', 'rate-grant', ...HANDOFF_TYPES]);
const NEW_MASTER_TYPES = new Set(['upgrade-ready', 'upgrade-failed', 'rate-buckets-request', ...HANDOFF_TYPES]);
const OLD_MASTER_TYPES = new Set(['admin-handover', 'rate-buckets', ...HANDOFF_TYPES]);

export function isHandoffMessage(msg: { readonly type: string }): msg is HandoffMessage {
  return msg.type === 'handoff' || msg.type === 'handoff-result';
}

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
