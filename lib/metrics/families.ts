/**
 * @module The catalogue of metric families: one name, type and help text per family, shared by the workers
 * (which count) and the master (which aggregates and renders), so both sides agree on every name.
 */

export type FamilyType = 'counter' | 'gauge' | 'histogram';

export interface FamilyDef {
  readonly name: string;
  readonly type: FamilyType;
  readonly help: string;
  /** Histograms only: upper bounds (seconds), ascending; `+Inf` is implicit. */
  readonly buckets?: readonly number[];
}

/**
 * Fixed latency buckets (seconds), from 1 ms to a minute. Fixed so that every worker's histogram merges with
 * every other one's by adding arrays; never change them without a new family name.
 */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

/** Label value for "no route matched" and "the route has no upstream". */
export const NONE = '(none)';

export const STATUS_CLASSES: readonly string[] = Object.freeze(['1xx', '2xx', '3xx', '4xx', '5xx']);
export const PROTOCOLS = Object.freeze(['http1', 'h2', 'websocket'] as const);
export type Protocol = (typeof PROTOCOLS)[number];
export const CONNECTION_STATES = Object.freeze(['active', 'draining'] as const);

// ---- counted by the workers, summed by the master -------------------------------------------------------------

export const REQUESTS: FamilyDef = {
  name: 'baton_requests_total',
  type: 'counter',
  help: 'HTTP requests finished, by route, upstream and status class (a client that left counts as 499).',
};

export const REQUEST_DURATION: FamilyDef = {
  name: 'baton_request_duration_seconds',
  type: 'histogram',
  help: 'Time from the request\'s arrival to the end of its response, by route and upstream.',
  buckets: LATENCY_BUCKETS,
};

export const UPSTREAM_LATENCY: FamilyDef = {
  name: 'baton_upstream_latency_seconds',
  type: 'histogram',
  help: 'Time from the first upstream dispatch (failovers included) to the upstream\'s response headers, by upstream.',
  buckets: LATENCY_BUCKETS,
};

export const UPSTREAM_FAILURES: FamilyDef = {
  name: 'baton_upstream_failures_total',
  type: 'counter',
  help: 'Failed upstream attempts (each failover or retry counts), by upstream, kind (connect, reset, timeout, protocol, internal) and error code.',
};

export const WEBSOCKET_TUNNELS: FamilyDef = {
  name: 'baton_websocket_tunnels_total',
  type: 'counter',
  help: 'WebSocket tunnels closed, by route, upstream and handshake status class (101 = 1xx, 499 = client left first).',
};

export const RATE_LIMITED: FamilyDef = {
  name: 'baton_rate_limited_total',
  type: 'counter',
  help: 'Requests refused with 429 by a route\'s rate_limit, by route.',
};

export const CONNECTIONS: FamilyDef = {
  name: 'baton_connections',
  type: 'gauge',
  help: 'Open client connections of the live workers, by protocol and worker state (active or draining).',
};

/** What a hand-off moves (lib/ipc/messages.ts `HandoffKind`). */
export const HANDOFF_KINDS = Object.freeze(['http1', 'websocket'] as const);

export const HANDOFFS: FamilyDef = {
  name: 'baton_handoffs_total',
  type: 'counter',
  help: 'Connections a draining worker passed to a serving one instead of closing them, by kind (counted by the worker that gave them).',
};

export const HANDOFFS_RECEIVED: FamilyDef = {
  name: 'baton_handoffs_received_total',
  type: 'counter',
  help: 'Connections a worker took over from a draining one, by kind (after an upgrade, these are in the new master).',
};

export const HANDOFF_FAILURES: FamilyDef = {
  name: 'baton_handoff_failures_total',
  type: 'counter',
  help: 'Hand-offs that did not happen (the connection drained where it was), by kind and reason.',
};

export const QUEUE_DEPTH: FamilyDef = {
  name: 'baton_upstream_queue_depth',
  type: 'gauge',
  help: 'Requests waiting in an upstream\'s queue for a target under its max_connections, by upstream.',
};

export const QUEUE_OUTCOMES = Object.freeze(['dispatched', 'timeout', 'full', 'left'] as const);
export type QueueOutcome = (typeof QUEUE_OUTCOMES)[number];

export const QUEUED: FamilyDef = {
  name: 'baton_upstream_queue_total',
  type: 'counter',
  help: 'Requests that found every target of an upstream at max_connections, by upstream and outcome (dispatched after a wait, timeout = 503, full = 503 at once, left = the client went away).',
};

export const QUEUE_WAIT: FamilyDef = {
  name: 'baton_upstream_queue_wait_seconds',
  type: 'histogram',
  help: 'Time requests spent in an upstream\'s queue, by upstream (every wait that ended: dispatched, timed out or left).',
  buckets: LATENCY_BUCKETS,
};

// ---- known to the master only -------------------------------------------------------------------------------------

export const BUILD_INFO: FamilyDef = { name: 'baton_build_info', type: 'gauge', help: 'Always 1; the labels name the version of the master and of Node.js.' };
export const START_TIME: FamilyDef = { name: 'baton_start_time_seconds', type: 'gauge', help: 'When this master started (unix time).' };
export const WORKERS: FamilyDef = { name: 'baton_workers', type: 'gauge', help: 'Worker processes by generation and state.' };
export const WORKER_RESTARTS: FamilyDef = { name: 'baton_worker_restarts_total', type: 'counter', help: 'Workers replaced after dying unasked.' };
export const RELOADS: FamilyDef = { name: 'baton_reloads_total', type: 'counter', help: 'Reloads (HUP or POST /reload) by outcome.' };
export const UPGRADES: FamilyDef = {
  name: 'baton_upgrades_total',
  type: 'counter',
  help: 'Binary upgrades started by this master, by outcome (ok = the new master became ready; rolled_back = it left after that).',
};

// ---- processes and upstream health, known to the master from its own sample and the workers' pushes ------------

export const TARGET_UP: FamilyDef = {
  name: 'baton_upstream_target_up',
  type: 'gauge',
  help: '1 when the serving workers send requests to this upstream target, 0 when any of them has taken it out (passive marks or active checks).',
};
export const PROCESS_RSS: FamilyDef = { name: 'baton_process_resident_memory_bytes', type: 'gauge', help: 'Resident memory of the master and of each live worker, by role, pid and generation.' };
export const PROCESS_HEAP: FamilyDef = { name: 'baton_process_heap_used_bytes', type: 'gauge', help: 'V8 heap in use, by role, pid and generation.' };
export const PROCESS_ELU: FamilyDef = {
  name: 'baton_process_event_loop_utilization',
  type: 'gauge',
  help: 'Share of time the event loop was busy (0 to 1): workers over their last push interval (1 s), the master since the previous scrape.',
};
export const PROCESS_FDS: FamilyDef = { name: 'baton_process_open_fds', type: 'gauge', help: 'Open file descriptors, by role, pid and generation.' };
