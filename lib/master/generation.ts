/**
 * @module A generation: N workers started on one config snapshot. It reports ready once every worker is,
 * replaces a worker that dies unasked (with backoff) without touching the others, drains on request
 * with a hard deadline, and reports gone when its last worker has left.
 */
import { EventEmitter } from 'node:events';
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { ListenerEntry } from './listeners.js';
import { WorkerHandle, type WorkerIdentity } from './worker-handle.js';

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
}

export class Generation extends EventEmitter<GenerationEvents> {
  readonly workers: (WorkerHandle | null)[];
  status: 'starting' | 'active' | 'draining' = 'starting';
  restarts = 0;
  readonly #failures: number[];
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopping = false;

  constructor(
    readonly id: number,
    readonly config: Config,
    private readonly sockets: () => readonly ListenerEntry[],
    private readonly identity: WorkerIdentity,
    private readonly log: Logger,
  ) {
    super();
    this.workers = Array.from({ length: config.workers }, () => null);
    this.#failures = Array.from({ length: config.workers }, () => 0);
  }

  start(): void {
    for (let slot = 0; slot < this.workers.length; slot++) this.#spawn(slot);
    // Same bound as for a new master: a generation that is not ready by then never will be.
    const deadline = setTimeout(() => {
      if (this.status === 'starting') this.#fail(`workers not ready within ${this.config.upgradeTimeout} ms`);
    }, this.config.upgradeTimeout);
    deadline.unref();
    this.#timers.add(deadline);
  }

  #fail(reason: string): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#clearTimers();
    for (const other of this.live()) other.kill('SIGKILL');
    this.emit('failed', reason);
    if (this.live().length === 0) this.emit('gone');
  }

  live(): WorkerHandle[] {
    return this.workers.filter((w): w is WorkerHandle => w !== null && w.state !== 'exited');
  }

  #spawn(slot: number): void {
    const w = new WorkerHandle(slot, this.id, this.config, this.sockets(), this.identity, (worker, msg) => {
      if (msg.type === 'ready') {
        this.log.debug({ generation: this.id, worker: worker.pid }, 'worker ready');
        if (this.status === 'draining') worker.drain();
        else if (this.status === 'starting' && !this.#stopping && this.workers.every((x) => x?.state === 'ready')) {
          this.status = 'active';
          this.#clearTimers();
          this.emit('ready');
        }
      } else if (msg.type === 'stats') {
        this.emit('workerStats', worker);
      } else if (msg.type === 'fatal') {
        this.log.error({ generation: this.id, worker: worker.pid }, `worker cannot start: ${msg.message}`);
      }
    }, (worker) => this.#exited(worker));
    this.workers[slot] = w;
  }

  #exited(w: WorkerHandle): void {
    this.emit('workerExit', w);
    const how = w.exit?.signal ? `signal ${w.exit.signal}` : `code ${w.exit?.code}`;
    if (this.status === 'draining' || this.#stopping) {
      this.log.debug({ generation: this.id, worker: w.pid }, `worker left (${how})`);
      if (this.live().length === 0) {
        this.#clearTimers();
        this.emit('gone');
      }
      return;
    }
    if (this.status === 'starting' && w.state !== 'ready') {
      // A worker that cannot even start on this config will not do better on a retry: the generation fails,
      // and a reload reports it instead of waiting forever while the old generation keeps serving.
      this.#fail(w.fatal ?? `worker ${w.pid} exited (${how}) before it was ready`);
      return;
    }
    const lived = Date.now() - w.startedAt;
    if (lived > BACKOFF_RESET_AFTER_MS) this.#failures[w.slot] = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.#failures[w.slot]);
    this.#failures[w.slot]++;
    this.restarts++;
    this.log.error({ generation: this.id, worker: w.pid, respawnIn: delay }, `worker died unexpectedly (${how}); replacing it`);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.status !== 'draining' && !this.#stopping) this.#spawn(w.slot);
    }, delay);
    this.#timers.add(timer);
  }

  drain(): void {
    if (this.status === 'draining') return;
    this.status = 'draining';
    this.#clearTimers();
    const live = this.live();
    if (live.length === 0) {
      queueMicrotask(() => this.emit('gone'));
      return;
    }
    for (const w of live) w.drain();
    const backstop = setTimeout(() => {
      for (const w of this.live()) {
        this.log.warn({ generation: this.id, worker: w.pid }, 'worker still running after shutdown_timeout: killed');
        w.kill('SIGKILL');
      }
    }, this.config.shutdownTimeout + DRAIN_KILL_MARGIN_MS);
    backstop.unref();
    this.#timers.add(backstop);
  }

  stop(signal: 'SIGTERM' | 'SIGKILL'): void {
    this.#stopping = true;
    this.#clearTimers();
    const live = this.live();
    if (live.length === 0) {
      queueMicrotask(() => this.emit('gone'));
      return;
    }
    for (const w of live) w.kill(signal);
  }

  reopenLogs(): void {
    for (const w of this.live()) w.send({ type: 'reopen' });
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
