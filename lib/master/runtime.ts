/**
 * @module The master's interpreter: feeds events to the reducer one at a time and performs the effects it
 * returns (processes, sockets, pid files, timers). It decides nothing itself: an effect that fails reports it
 * as an event (pidFileFailed, generationFailed, ...) and the reducer decides what follows. With cli/main it is
 * the only place that ends the process. The world outside (processes, pid files, systemd, config files) comes
 * through a boundary that unit tests replace with fakes.
 */
import type { Config } from '../config/types.js';
import type { OwnedLogs } from '../log/logger.js';
import { oldbinPath } from '../control/pid-file.js';
import { VERSION } from '../version.js';
import { AdminListener } from './admin.js';
import { REAL_WORLD, type MasterBoundary } from './boundary.js';
import type { ListenerRegistry } from './listeners.js';
import { reduce } from './reduce.js';
import type { Effect, MasterEvent, MasterState, ReloadOutcome } from './state.js';
import { statusReply, serving, type StatusReply } from './status.js';
import { MasterMetrics } from './metrics.js';
import { moveMasterSettings } from './settings.js';
import { NewMaster } from './new-master.js';
import { Workforce } from './workforce.js';
import { candidatesOf, HandoffRelay } from './handoff-relay.js';
import { OLD_MASTER } from './upgrade.js';
import { RateBuckets } from './rate-buckets.js';
import { traceStep } from '../util/startup-trace.js';

export type { MasterBoundary };

const FAST_STOP_KILL_AFTER_MS = 3000;
/** How long an exiting master waits for a log file still being opened (its last lines must not be lost). */
const EXIT_LOG_WAIT_MS = 2000;

export interface RuntimeOptions {
  readonly configFile: string;
  readonly logs: OwnedLogs;
  readonly registry: ListenerRegistry;
  readonly oldMaster: number | null;
  readonly startedAt: number;
  readonly world?: Partial<MasterBoundary>;
  /** Rate-limit buckets (main.ts gives the ones an old master's snapshot filled). */
  readonly rates?: RateBuckets;
}

const errno = (err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} (${e.message})` : e.message;
};

export class MasterRuntime {
  #state: MasterState;
  readonly #world: MasterBoundary;
  readonly #queue: MasterEvent[] = [];
  #running = false;
  #exiting = false;
  readonly #workforce: Workforce;
  readonly #replies = new Map<number, (o: ReloadOutcome) => void>();
  #nextReply = 1;
  readonly #newMaster: NewMaster;
  /** Passes descriptors of connections handed over between workers (and between the masters of an upgrade). */
  readonly relay: HandoffRelay;
  readonly #admin: AdminListener;
  #pidFile: string;
  readonly #metrics = new MasterMetrics();
  #lastUpgradeFailure: { reason: string; at: string } | null = null;
  /** The master's own logs follow the config of the serving generation (a reload may move them). */
  #logs: OwnedLogs;

  constructor(initial: { state: MasterState; effects: readonly Effect[] }, private readonly opts: RuntimeOptions) {
    this.#state = initial.state;
    this.#world = { ...REAL_WORLD, ...opts.world };
    this.#logs = opts.logs;
    this.#pidFile = initial.state.config.pidFile;
    this.relay = new HandoffRelay({ candidates: () => candidatesOf(this.#state, this.#workforce.byId), peer: () => this.#peer(), log: () => this.log });
    opts.registry.onNotice = (msg) => this.log.warn(msg);
    const rates = opts.rates ?? new RateBuckets();
    this.#workforce = new Workforce({
      registry: opts.registry,
      world: this.#world,
      log: () => this.log,
      status: (id) => this.#state.generations.find((g) => g.id === id)?.status ?? null,
      enqueue: (e) => this.enqueue(e),
      metrics: this.#metrics,
      onHandoff: (w, msg, handle) => this.relay.receive(this.relay.worker(w), msg, handle),
      rates,
    });
    this.#newMaster = new NewMaster(this.#world, (e) => this.enqueue(e), {
      receive: (msg, handle) => this.relay.receive(this.#newMaster.endpoint, msg, handle),
      gone: () => this.relay.gone(this.#newMaster.endpoint),
    }, () => rates.snapshot());
    this.#admin = new AdminListener(opts.registry, {
      status: () => this.status(),
      metrics: () => this.metrics(),
      reload: () => this.reload(),
    });
    this.#drive(() => this.#perform(initial.effects));
  }

  get log() {
    return this.#logs.error;
  }

  get state(): MasterState {
    return this.#state;
  }

  /** POST /reload: a reload whose outcome is awaited (every request gets exactly one answer). */
  reload(): Promise<ReloadOutcome> {
    return new Promise<ReloadOutcome>((resolve) => {
      if (this.#exiting) return resolve({ ok: false, errors: ['master is exiting'] });
      const id = this.#nextReply++;
      this.#replies.set(id, resolve);
      this.enqueue({ type: 'reload', reply: id });
    });
  }

  /** Events from signals, children, timers, effects and the admin listener all arrive here, handled in order. */
  enqueue(event: MasterEvent): void {
    if (this.#exiting) return;
    traceStep(`event ${event.type}`);
    this.#queue.push(event);
    this.#drive(() => {});
  }

  /** Run `first`, then every queued event; events enqueued meanwhile wait their turn (never re-entrant). */
  #drive(first: () => void): void {
    if (this.#running) {
      first();
      return;
    }
    this.#running = true;
    try {
      first();
      for (let e = this.#queue.shift(); e && !this.#exiting; e = this.#queue.shift()) {
        const step = reduce(this.#state, e);
        this.#state = step.state;
        this.#perform(step.effects);
      }
    } finally {
      this.#running = false;
    }
  }

  #perform(effects: readonly Effect[]): void {
    for (const effect of effects) {
      this.#metrics.observe(effect);
      try {
        this.#do(effect);
      } catch (err) {
        this.log.error({ err, effect: effect.type }, 'master effect failed');
      }
    }
  }

  #do(effect: Effect): void {
    traceStep(`effect ${effect.type}`);
    const world = this.#world;
    switch (effect.type) {
      case 'log':
        this.log[effect.level](effect.fields ?? {}, effect.msg);
        return;
      case 'loadConfig': {
        const result = world.loadConfig(this.opts.configFile);
        this.enqueue(result.ok ? { type: 'configLoaded', config: result.config } : { type: 'configInvalid', errors: result.errors });
        return;
      }
      case 'startGeneration':
        this.#workforce.start(effect.id, effect.config);
        return;
      case 'drainGeneration':
        this.#workforce.byId.get(effect.id)?.drain(this.relay.canReceive(effect.id));
        return;
      case 'stopGeneration':
        this.#workforce.byId.get(effect.id)?.stop(effect.signal);
        return;
      case 'closeUnusedListeners':
        this.#closeUnusedListeners();
        return;
      case 'reopenLogs':
        this.#logs.reopen();
        this.#workforce.reopenLogs(this.#state.config);
        return;
      case 'reply': {
        const resolve = this.#replies.get(effect.id);
        this.#replies.delete(effect.id);
        resolve?.(effect.outcome);
        return;
      }
      case 'writePidFile': {
        const path = this.#state.config.pidFile;
        try {
          world.writePidFile(path);
          this.#pidFile = path;
          this.enqueue({ type: 'pidFileWritten' });
        } catch (err) {
          this.enqueue({ type: 'pidFileFailed', reason: `cannot write the pid file ${path}: ${errno(err)}` });
        }
        return;
      }
      case 'applyMasterSettings': {
        const moved = moveMasterSettings({ previous: effect.previous, next: this.#state.config, logs: this.#logs, pidFile: this.#pidFile, upgrading: this.#state.upgrade !== null, world });
        this.#logs = moved.logs;
        this.#pidFile = moved.pidFile;
        return;
      }
      case 'announceReady': {
        const fields = { MAINPID: String(process.pid), READY: '1', STATUS: `serving, generation ${this.#state.generations.at(-1)?.id ?? 1}` };
        // A new master tells systemd it is the main process before telling the old master, which may then leave.
        void world.notify(fields, (m) => this.log.warn(m)).then(() => {
          if (this.opts.oldMaster !== null) world.tellOldMaster({ type: 'upgrade-ready', pid: process.pid });
        });
        return;
      }
      case 'notify': {
        const fields = { ...effect.fields };
        if (fields.MAINPID === 'self') fields.MAINPID = String(process.pid);
        void world.notify(fields, (m) => this.log.warn(m));
        return;
      }
      case 'renamePidToOldbin':
        try {
          world.renamePidFile(this.#pidFile, oldbinPath(this.#pidFile));
          this.enqueue({ type: 'oldbinRenamed' });
        } catch (err) {
          this.enqueue({ type: 'oldbinRenameFailed', reason: `cannot rename ${this.#pidFile} to ${oldbinPath(this.#pidFile)}: ${errno(err)}` });
        }
        return;
      case 'restorePidFromOldbin':
        if (world.restorePidFile(this.#pidFile)) this.log.info({ pidFile: this.#pidFile }, 'pid file restored');
        return;
      case 'spawnNewMaster':
        this.#newMaster.spawn(this.opts.registry.entries(), this.#state.nextGeneration);
        return;
      case 'armUpgradeDeadline':
        this.#newMaster.armDeadline(this.#state.config.upgradeTimeout);
        return;
      case 'disarmUpgradeDeadline':
        this.#newMaster.disarm();
        return;
      case 'killNewMaster':
        this.#newMaster.kill(effect.pid);
        return;
      case 'openAdmin': {
        const admin = this.#state.config.admin;
        if (!admin) return;
        this.#admin.open(admin.listen).then(
          (bound) => { if (bound) this.log.info(bound, 'admin listening'); },
          (err: Error) => this.enqueue({ type: 'adminFailed', reason: err.message }),
        );
        return;
      }
      case 'releaseAdmin':
        // Our handle closes (the new master's copy stays), then the new master is told to take over.
        this.#admin.release();
        this.#newMaster.handOverAdmin();
        return;
      case 'armStopDeadline':
        setTimeout(() => this.enqueue({ type: 'stopDeadline' }), FAST_STOP_KILL_AFTER_MS).unref();
        return;
      case 'settled':
        if (effect.operation === 'upgrade' && effect.outcome === 'failed') {
          this.#lastUpgradeFailure = { reason: effect.reason ?? 'unknown', at: new Date().toISOString() };
        }
        return;
      case 'startupFailed':
        if (this.#state.config.log.error.kind !== 'stderr') world.stderr(`baton: cannot start: ${effect.reason}`);
        if (this.opts.oldMaster !== null) world.tellOldMaster({ type: 'upgrade-failed', pid: process.pid, reason: effect.reason });
        return;
      case 'exit':
        void this.#exit(effect.code);
        return;
    }
  }

  /** The other master of an upgrade, when hand-offs may go to it: the new one once ready, or the old one. */
  #peer() {
    if (this.#state.upgrade?.stage === 'ready' && this.#newMaster.connected) return this.#newMaster.endpoint;
    return this.opts.oldMaster !== null && this.#state.oldMasterAlive && process.connected ? OLD_MASTER : null;
  }

  #closeUnusedListeners(): void {
    const keep = new Set<string>();
    const add = (c: Config) => { for (const l of c.listeners) keep.add(l.address.key); };
    add(this.#state.config);
    for (const g of this.#state.generations) if (g.status !== 'draining') add(g.config);
    // The admin socket stays, served or not yet (a new master takes it only when the old one hands it over).
    if (this.#state.config.admin) keep.add(this.#state.config.admin.listen.key);
    if (this.#admin.key) keep.add(this.#admin.key);
    const closed = this.#workforce.closeExcept(keep, this.#soleOwner());
    if (closed.length) this.log.info({ listeners: closed }, 'closed listening sockets no generation uses');
  }

  /** No other master (the old or the new one of an upgrade) shares our sockets: unix socket files are ours to remove. */
  #soleOwner(): boolean {
    return this.#state.upgrade === null && !this.#state.oldMasterAlive;
  }

  async #exit(code: number): Promise<void> {
    if (this.#exiting) return;
    this.#exiting = true;
    this.#newMaster.disarm();
    this.#admin.release(this.#soleOwner());
    this.opts.registry.closeAll(this.#soleOwner());
    this.#world.removePidFileIfOurs(this.#pidFile);
    this.#world.removePidFileIfOurs(oldbinPath(this.#pidFile));
    await this.#logs.settle(EXIT_LOG_WAIT_MS);
    this.#world.exit(code);
  }

  status(): StatusReply {
    return statusReply({
      state: this.#state,
      generations: this.#workforce.byId,
      version: VERSION,
      configFile: this.opts.configFile,
      startedAt: this.opts.startedAt,
      listeners: this.opts.registry.entries().filter((e) => e.key !== this.#admin.key && e.key !== this.#state.config.admin?.listen.key).map((e) => ({ listen: e.key, address: e.bound })),
      oldMaster: this.opts.oldMaster,
      reloads: this.#metrics.reloads,
      lastUpgradeFailure: this.#lastUpgradeFailure,
    });
  }

  metrics(): string {
    return this.#metrics.render({ version: VERSION, startedAt: this.opts.startedAt, health: serving({ state: this.#state, generations: this.#workforce.byId }) });
  }
}
