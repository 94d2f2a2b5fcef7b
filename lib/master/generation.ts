/**
 * @module A generation: N workers started on one config snapshot. It reports ready once every worker is,
 * replaces a worker that dies unasked (with backoff) or retires on its own without touching the others, drains
 * on request with a hard deadline, and reports gone when its last worker has left. Its status (starting, active,
 * draining) is the reducer's, read through `status()`: this file keeps only the mechanics.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config/types.js';
import type { HandoffMessage, WorkerToMaster } from '../ipc/messages.js';
import type { Logger } from '../log/logger.js';
import type { ListenerEntry } from './listeners.js';
import type { GenerationStatus } from './state.js';
import { WorkerHandle, type SpawnProcess, type WorkerIdentity } from './worker-handle.js';

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A worker that lived this long before dying starts the backoff from scratch. */
const BACKOFF_RESET_AFTER_MS = 10_000;
/** After shutdown_timeout the worker closes everything itself; this margin is the master's backstop. */
const DRAIN_KILL_MARGIN_MS = 5000;

export interface GenerationEvents {
  ready: [];
  failed: [reason: string];
  gone: [];
  /** A worker pushed its stats (`worker.stats` holds them). */
  workerStats: [worker: WorkerHandle];
  /** A worker process exited (asked or not), before the generation reacts to it. */
  workerExit: [worker: WorkerHandle];
  /** A worker gives or answers a hand-off (the relay's business, with the descriptor it carries). */
  handoff: [worker: WorkerHandle, msg: HandoffMessage, handle: unknown];
  /** A worker asks for rate-limit tokens (lib/master/rate-buckets.ts answers). */
  rateLease: [worker: WorkerHandle, msg: Extract<WorkerToMaster, { type: 'rate-lease' }>];
}

export interface GenerationOptions {
  readonly id: number;
  readonly config: Config;
  /** The listening sockets its workers inherit, looked up when each worker starts. */
  readonly sockets: () => readonly ListenerEntry[];
  readonly identity: WorkerIdentity;
  /** The master's error log now (a reload may move it: never keep the logger itself). */
  readonly log: () => Logger;
  /** The reducer's status of this generation; null once it is no longer in the master's state. */
  readonly status: () => GenerationStatus | null;
  /** The process boundary (child_process.spawn unless a test fakes it). */
  readonly spawn?: SpawnProcess;
}

export class Generation extends EventEmitter<GenerationEvents> {
  readonly id: number;
  readonly config: Config;
  /** The worker serving each slot now (a retiring one is no longer in its slot, but still live). */
  readonly slots: (WorkerHandle | null)[];
  restarts = 0;
  readonly #opts: GenerationOptions;
  readonly #live = new Set<WorkerHandle>();
  readonly #failures: number[];
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Reported failed, or told to stop: its workers are being killed, none is replaced. */
  #ending = false;
  #goneReported = false;

  constructor(opts: GenerationOptions) {
    super();
    this.#opts = opts;
    this.id = opts.id;
    this.config = opts.config;
    this.slots = Array.from({ length: opts.config.workers }, () => null);
    this.#failures = Array.from({ length: opts.config.workers }, () => 0);
  }

  get #log(): Logger {
    return this.#opts.log();
  }

  start(): void {
    for (let slot = 0; slot < this.slots.length; slot++) this.#spawn(slot);
    // Same bound as for a new master: a generation that is not ready by then never will be.
    this.#after(this.config.upgradeTimeout, () => {
      if (this.#opts.status() === 'starting') this.#fail(`workers not ready within ${this.config.upgradeTimeout} ms`);
    });
  }

  /** Every worker process that has not exited yet, retiring ones included. */
  live(): WorkerHandle[] {
    return [...this.#live];
  }

  #spawn(slot: number): void {
    const w = new WorkerHandle(
      { slot, generation: this.id, config: this.config, listeners: this.#opts.sockets(), identity: this.#opts.identity, spawn: this.#opts.spawn },
      (worker, msg, handle) => {
        if (msg.type === 'handoff' || msg.type === 'handoff-result') this.emit('handoff', worker, msg, handle);
        else if (msg.type === 'ready') this.#ready(worker);
        else if (msg.type === 'stats') this.emit('workerStats', worker);
        else if (msg.type === 'fatal') this.#log.error({ generation: this.id, worker: worker.pid }, `worker cannot start: ${msg.message}`);
        else if (msg.type === 'retiring') this.#retiring(worker, msg.reason);
        else if (msg.type === 'rate-lease') this.emit('rateLease', worker, msg);
      },
      (worker) => this.#exited(worker),
    );
    this.slots[slot] = w;
    this.#live.add(w);
  }

  #ready(w: WorkerHandle): void {
    this.#log.debug({ generation: this.id, worker: w.pid }, 'worker ready');
    const status = this.#opts.status();
    if (status === 'draining') w.drain();
    else if (status === 'starting' && !this.#ending && this.slots.every((x) => x?.state === 'ready')) this.emit('ready');
  }

  /** It drains on its own (an uncaught exception): its slot gets a new worker now, not once it has gone. */
  #retiring(w: WorkerHandle, reason: string): void {
    const status = this.#opts.status();
    if (this.slots[w.slot] !== w || this.#ending || (status !== 'active' && status !== 'starting')) {
      this.#log.error({ generation: this.id, worker: w.pid }, `worker retires (${reason})`);
      return;
    }
    this.#log.error({ generation: this.id, worker: w.pid }, `worker retires (${reason}); replacing it`);
    this.#replace(w);
  }

  #exited(w: WorkerHandle): void {
    this.#live.delete(w);
    this.emit('workerExit', w);
    const status = this.#opts.status();
    const current = this.slots[w.slot] === w;
    if (!current || status === 'draining' || status === null || this.#ending) {
      this.#log.debug({ generation: this.id, worker: w.pid }, `worker left (${w.describeExit()})`);
      this.#goneIfEmpty();
      return;
    }
    if (status === 'starting' && !w.wasReady) {
      // A worker that cannot even start on this config will not do better on a retry: the generation fails,
      // and a reload reports it instead of waiting forever while the old generation keeps serving.
      this.#fail(w.fatal ?? `worker ${w.pid} exited (${w.describeExit()}) before it was ready`);
      return;
    }
    this.#log.error({ generation: this.id, worker: w.pid }, `worker died unexpectedly (${w.describeExit()}); replacing it`);
    this.#replace(w);
  }

  /** A new worker for `w`'s slot, after a backoff that grows while workers of that slot keep dying young. */
  #replace(w: WorkerHandle): void {
    if (Date.now() - w.startedAt > BACKOFF_RESET_AFTER_MS) this.#failures[w.slot] = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.#failures[w.slot]!);
    this.#failures[w.slot]!++;
    this.restarts++;
    this.slots[w.slot] = null;
    this.#log.debug({ generation: this.id, slot: w.slot, respawnIn: delay }, 'replacement scheduled');
    this.#after(delay, () => {
      const status = this.#opts.status();
      if ((status === 'active' || status === 'starting') && !this.#ending) this.#spawn(w.slot);
    }, { keepAlive: true });
  }

  #fail(reason: string): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#clearTimers();
    for (const w of this.#live) w.kill('SIGKILL');
    this.emit('failed', reason);
    this.#goneIfEmpty();
  }

  #goneIfEmpty(): void {
    if (this.#live.size > 0 || this.#goneReported) return;
    // With no live worker but a replacement pending (a retired worker that left before its backoff ran out), a
    // serving generation is between workers, not gone; drain() and stop() come back here once it is told to leave.
    const status = this.#opts.status();
    if (!this.#ending && (status === 'active' || status === 'starting')) return;
    this.#goneReported = true;
    this.#clearTimers();
    this.emit('gone');
  }

  /** `handoff`: another generation (or the other master of an upgrade) serves and may take the connections. */
  drain(handoff = false): void {
    this.#clearTimers();
    if (this.#live.size === 0) {
      queueMicrotask(() => this.#goneIfEmpty());
      return;
    }
    for (const w of this.#live) w.drain(handoff);
    this.#after(this.config.shutdownTimeout + DRAIN_KILL_MARGIN_MS, () => {
      for (const w of this.#live) {
        this.#log.warn({ generation: this.id, worker: w.pid }, 'worker still running after shutdown_timeout: killed');
        w.kill('SIGKILL');
      }
    });
  }

  stop(signal: 'SIGTERM' | 'SIGKILL'): void {
    this.#ending = true;
    this.#clearTimers();
    if (this.#live.size === 0) {
      queueMicrotask(() => this.#goneIfEmpty());
      return;
    }
    for (const w of this.#live) w.kill(signal);
  }

  reopenLogs(): void {
    for (const w of this.#live) w.send({ type: 'reopen' });
  }

  /** Deadlines never keep the master alive; a pending replacement does (it may be all that is left to do). */
  #after(ms: number, fn: () => void, opts: { keepAlive?: boolean } = {}): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    if (!opts.keepAlive) timer.unref();
    this.#timers.add(timer);
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
