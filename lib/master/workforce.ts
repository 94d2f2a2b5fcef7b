/**
 * @module The generations this master runs: starting one (listeners bound, `user:` resolved, log files prepared,
 * workers spawned, its events wired to the reducer), finding them by id, and saying where each listener serves.
 * Anything that throws while a generation starts becomes a generationFailed event, never a reload left waiting.
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { MasterBoundary } from './boundary.js';
import { Generation } from './generation.js';
import type { ListenerRegistry } from './listeners.js';
import { prepareLogFiles } from './log-files.js';
import type { MasterMetrics } from './metrics.js';
import type { RateBuckets } from './rate-buckets.js';
import type { GenerationStatus, MasterEvent } from './state.js';
import type { WorkerHandle, WorkerIdentity } from './worker-handle.js';
import type { HandoffMessage } from '../ipc/messages.js';

export interface WorkforceOptions {
  readonly registry: ListenerRegistry;
  readonly world: Pick<MasterBoundary, 'workerIdentity' | 'spawnWorker'>;
  readonly log: () => Logger;
  /** The reducer's status of a generation (null once it is no longer in the state). */
  readonly status: (id: number) => GenerationStatus | null;
  readonly enqueue: (e: MasterEvent) => void;
  readonly metrics: MasterMetrics;
  /** Hand-off messages of every worker, for the relay. */
  readonly onHandoff?: (worker: WorkerHandle, msg: HandoffMessage, handle: unknown) => void;
  /** Daemon-wide rate-limit buckets: every generation's workers lease from the same ones. */
  readonly rates: RateBuckets;
}

export class Workforce {
  readonly byId = new Map<number, Generation>();
  /** Who the newest generation's workers run as (log files are handed to them on reopen). */
  identity: WorkerIdentity = {};
  /** Listener keys whose URL was logged (once each, until closed). */
  readonly #announced = new Set<string>();

  constructor(private readonly opts: WorkforceOptions) {}

  start(id: number, config: Config): void {
    const { registry, enqueue } = this.opts;
    let gen: Generation | undefined;
    try {
      const problems = registry.ensure(config.listeners);
      let identity: WorkerIdentity = {};
      try {
        identity = this.opts.world.workerIdentity(config.user);
      } catch {
        problems.push(`unknown user "${config.user}"`);
      }
      if (problems.length) {
        enqueue({ type: 'generationFailed', id, reason: problems.join('; ') });
        return;
      }
      this.#announce(config);
      this.identity = identity;
      for (const p of prepareLogFiles(config, identity)) this.opts.log().error(p);
      const keys = config.listeners.map((l) => l.address.key);
      gen = new Generation({
        id, config, identity, log: this.opts.log, spawn: this.opts.world.spawnWorker,
        sockets: () => keys.map((k) => registry.get(k)).filter((e) => e !== undefined),
        status: () => this.opts.status(id),
      });
      this.byId.set(id, gen);
      this.opts.metrics.watch(gen);
      gen.on('ready', () => enqueue({ type: 'generationReady', id }));
      gen.on('handoff', (w, msg, handle) => this.opts.onHandoff?.(w, msg, handle));
      gen.on('failed', (reason) => enqueue({ type: 'generationFailed', id, reason }));
      gen.on('rateLease', (w, msg) => w.send({ type: 'rate-grant', seq: msg.seq, grants: this.opts.rates.lease(msg.asks) }));
      gen.on('gone', () => {
        this.byId.delete(id);
        enqueue({ type: 'generationGone', id });
      });
      gen.start();
    } catch (err) {
      // Whatever threw, the reducer hears of it: a reload fails with a reply instead of staying `starting`.
      gen?.stop('SIGKILL');
      enqueue({ type: 'generationFailed', id, reason: `cannot start generation ${id}: ${(err as Error).message}` });
    }
  }

  /** One line per listener with its URL, the first time this master serves it. */
  #announce(config: Config): void {
    for (const l of config.listeners) {
      const entry = this.opts.registry.get(l.address.key);
      if (!entry || this.#announced.has(entry.key)) continue;
      this.#announced.add(entry.key);
      const unix = l.address.family === 'unix';
      const url = `${l.tls ? 'https' : 'http'}://${unix ? 'localhost' : entry.bound}/`;
      this.opts.log().info({ url, listener: entry.key, address: entry.bound, ...(unix ? { socket: entry.bound } : {}), ...(l.h2c ? { h2c: true } : {}), ...(l.proxyProtocol ? { proxy_protocol: true } : {}) }, 'listening');
    }
  }

  /** Close every listening socket but `keep`; returns the keys closed. */
  closeExcept(keep: ReadonlySet<string>, removeFiles: boolean): string[] {
    const closed = this.opts.registry.closeExcept(keep, removeFiles);
    for (const key of closed) this.#announced.delete(key);
    return closed;
  }

  reopenLogs(config: Config): void {
    for (const p of prepareLogFiles(config, this.identity)) this.opts.log().error(p);
    for (const g of this.byId.values()) g.reopenLogs();
  }
}
