/**
 * @module The master's interpreter: feeds events to the reducer one at a time and performs the effects it
 * returns (processes, sockets, pid files, timers). It decides nothing itself. With cli/main it is the only
 * place that ends the process.
 */
import type http from 'node:http';
import type { ChildProcess } from 'node:child_process';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogs, type Logs } from '../log/logger.js';
import { oldbinPath, removePidFileIfOurs, renameToOldbin, restoreFromOldbin, writePidFile } from '../control/pid-file.js';
import { VERSION } from '../version.js';
import { createAdminServer, listenOnHandle } from './admin.js';
import { Generation } from './generation.js';
import type { ListenerRegistry } from './listeners.js';
import { reduce, type Effect, type MasterEvent, type MasterState, type ReloadOutcome } from './state.js';
import { spawnNewMaster, tellOldMaster } from './upgrade.js';
import type { WorkerIdentity } from './worker-handle.js';
import { MasterMetrics } from './metrics.js';
import { notify } from './systemd.js';
import { prepareLogFiles } from './log-files.js';
import { workerIdentity } from './identity.js';

const NEW_MASTER_KILL_GRACE_MS = 3000;
const FAST_STOP_KILL_AFTER_MS = 3000;

export interface RuntimeOptions {
  readonly configFile: string;
  readonly logs: Logs;
  readonly registry: ListenerRegistry;
  readonly oldMaster: number | null;
  readonly startedAt: number;
}

export class MasterRuntime {
  #state: MasterState;
  readonly #queue: MasterEvent[] = [];
  #running = false;
  readonly #generations = new Map<number, Generation>();
  readonly #replies = new Map<number, (o: ReloadOutcome) => void>();
  #nextReply = 1;
  #newMaster: ChildProcess | null = null;
  #pidRenamed = false;
  #upgradeTimer: NodeJS.Timeout | null = null;
  #admin: http.Server | null = null;
  #adminKey: string | null = null;
  #pidFile: string;
  /** Who the newest generation's workers run as (log files are handed to them on reopen). */
  #identity: WorkerIdentity = {};
  readonly #metrics = new MasterMetrics();
  /** The master's own logs follow the config of the serving generation (a reload may move them). */
  #logs: Logs;

  constructor(initial: { state: MasterState; effects: readonly Effect[] }, private readonly opts: RuntimeOptions) {
    this.#state = initial.state;
    this.#logs = opts.logs;
    this.#pidFile = initial.state.config.pidFile;
    this.#perform(initial.effects);
  }

  get log() {
    return this.#logs.error;
  }

  /** Events from signals, children, timers and the admin listener all arrive here and are handled in order. */
  enqueue(event: MasterEvent): void {
    this.#queue.push(event);
    if (this.#running) return;
    this.#running = true;
    try {
      for (let e = this.#queue.shift(); e; e = this.#queue.shift()) {
        this.#metrics.observe(this.#state, e);
        const step = reduce(this.#state, e);
        this.#state = step.state;
        this.#perform(step.effects);
      }
    } finally {
      this.#running = false;
    }
  }

  async startAdmin(): Promise<void> {
    const admin = this.#state.config.admin;
    if (!admin) return;
    const problems = this.opts.registry.ensure([admin.listen]);
    if (problems.length) throw new Error(problems.join('; '));
    const entry = this.opts.registry.get(admin.listen.key)!;
    const server = createAdminServer({
      status: () => this.status(),
      metrics: () => this.metrics(),
      reload: () => new Promise<ReloadOutcome>((resolve) => {
        const id = this.#nextReply++;
        this.#replies.set(id, resolve);
        this.enqueue({ type: 'reload', reply: id });
      }),
    });
    await listenOnHandle(server, entry.handle);
    this.#admin = server;
    this.#adminKey = admin.listen.key;
    this.log.info({ address: entry.bound }, 'admin listening');
  }

  #perform(effects: readonly Effect[]): void {
    for (const effect of effects) {
      try {
        this.#do(effect);
      } catch (err) {
        this.log.error({ err, effect: effect.type }, 'master effect failed');
      }
    }
  }

  #do(effect: Effect): void {
    const { registry } = this.opts;
    const logs = this.#logs;
    switch (effect.type) {
      case 'log':
        logs.error[effect.level](effect.fields ?? {}, effect.msg);
        return;
      case 'loadConfig': {
        const result = loadConfig(this.opts.configFile);
        // Delivered as a new event, after the effects of this step.
        queueMicrotask(() => this.enqueue(result.ok ? { type: 'configLoaded', config: result.config } : { type: 'configInvalid', errors: result.errors }));
        return;
      }
      case 'startGeneration':
        this.#startGeneration(effect.id, effect.config);
        return;
      case 'drainGeneration':
        this.#generations.get(effect.id)?.drain();
        return;
      case 'stopGeneration':
        this.#generations.get(effect.id)?.stop(effect.signal);
        return;
      case 'closeUnusedListeners': {
        const keep = new Set<string>();
        const add = (c: Config) => { for (const l of c.listeners) keep.add(l.address.key); };
        add(this.#state.config);
        for (const g of this.#state.generations) if (g.status !== 'draining') add(g.config);
        if (this.#adminKey && this.#admin) keep.add(this.#adminKey);
        const closed = registry.closeExcept(keep);
        if (closed.length) this.log.info({ listeners: closed }, 'closed listening sockets no generation uses');
        return;
      }
      case 'reopenLogs':
        logs.reopen();
        for (const p of prepareLogFiles(this.#state.config, this.#identity)) this.log.error(p);
        for (const g of this.#generations.values()) g.reopenLogs();
        return;
      case 'reply': {
        const resolve = this.#replies.get(effect.id);
        this.#replies.delete(effect.id);
        resolve?.(effect.outcome);
        return;
      }
      case 'writePidFile':
        this.#pidFile = this.#state.config.pidFile;
        writePidFile(this.#pidFile);
        return;
      case 'applyMasterSettings':
        this.#applyMasterSettings(effect.previous);
        return;
      case 'announceReady': {
        const fields = { MAINPID: String(process.pid), READY: '1', STATUS: `serving, generation ${this.#state.generations.at(-1)?.id ?? 1}` };
        // A new master tells systemd it is the main process before telling the old master, which may then leave.
        void notify(fields, (m) => this.log.warn(m)).then(() => {
          if (this.opts.oldMaster !== null) tellOldMaster({ type: 'upgrade-ready', pid: process.pid });
        });
        return;
      }
      case 'notify': {
        const fields = { ...effect.fields };
        if (fields.MAINPID === 'self') fields.MAINPID = String(process.pid);
        void notify(fields, (m) => this.log.warn(m));
        return;
      }
      case 'renamePidToOldbin':
        this.#pidRenamed = renameToOldbin(this.#pidFile);
        return;
      case 'spawnNewMaster':
        this.#spawnNewMaster();
        return;
      case 'armUpgradeDeadline':
        this.#clearUpgradeTimer();
        this.#upgradeTimer = setTimeout(() => this.enqueue({ type: 'upgradeDeadline' }), this.#state.config.upgradeTimeout);
        return;
      case 'disarmUpgradeDeadline':
        this.#clearUpgradeTimer();
        return;
      case 'killNewMaster': {
        const child = this.#newMaster;
        if (!child || child.pid !== effect.pid) return;
        child.kill('SIGTERM');
        setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, NEW_MASTER_KILL_GRACE_MS).unref();
        return;
      }
      case 'restorePidFromOldbin':
        if (restoreFromOldbin(this.#pidFile)) this.log.info({ pidFile: this.#pidFile }, 'pid file restored');
        this.#pidRenamed = false;
        return;
      case 'releaseAdmin':
        // The new master answers /status from now on; our handle closes, its copy of the socket stays.
        if (this.#admin && this.#adminKey) {
          registry.forget(this.#adminKey);
          this.#admin.close();
          this.#admin = null;
        }
        return;
      case 'reclaimAdmin':
        if (!this.#admin) {
          this.startAdmin().catch((err: Error) => this.log.error({ err: err.message }, 'cannot take the admin listener back'));
        }
        return;
      case 'armStopDeadline':
        setTimeout(() => this.enqueue({ type: 'stopDeadline' }), FAST_STOP_KILL_AFTER_MS).unref();
        return;
      case 'exit':
        this.#exit(effect.code);
        return;
    }
  }

  #startGeneration(id: number, config: Config): void {
    const problems = this.opts.registry.ensure(config.listeners.map((l) => l.address));
    let identity: WorkerIdentity = {};
    try {
      identity = workerIdentity(config.user);
    } catch {
      problems.push(`unknown user "${config.user}"`);
    }
    if (problems.length) {
      queueMicrotask(() => this.enqueue({ type: 'generationFailed', id, reason: problems.join('; ') }));
      return;
    }
    this.#identity = identity;
    for (const p of prepareLogFiles(config, identity)) this.log.error(p);
    const keys = config.listeners.map((l) => l.address.key);
    const gen = new Generation(id, config, () => keys.map((k) => this.opts.registry.get(k)).filter((e) => e !== undefined), identity, this.log);
    this.#generations.set(id, gen);
    this.#metrics.watch(gen);
    gen.on('ready', () => this.enqueue({ type: 'generationReady', id }));
    gen.on('failed', (reason) => this.enqueue({ type: 'generationFailed', id, reason }));
    gen.on('gone', () => {
      this.#generations.delete(id);
      this.enqueue({ type: 'generationGone', id });
    });
    gen.start();
    for (const e of keys.map((k) => this.opts.registry.get(k))) {
      if (e && e.bound !== e.key) this.log.info({ listener: e.key, address: e.bound }, 'listening');
    }
  }

  #spawnNewMaster(): void {
    if (!this.#pidRenamed) {
      queueMicrotask(() => this.enqueue({ type: 'newMasterSpawnFailed', reason: `cannot rename ${this.#pidFile} to ${oldbinPath(this.#pidFile)}` }));
      return;
    }
    const entries = this.opts.registry.entries();
    const child = spawnNewMaster(entries, this.#state.nextGeneration, (msg) => this.enqueue({ type: 'newMasterReady', pid: msg.pid }));
    this.#newMaster = child;
    child.once('spawn', () => this.enqueue({ type: 'newMasterSpawned', pid: child.pid! }));
    child.once('error', (err) => this.enqueue({ type: 'newMasterSpawnFailed', reason: err.message }));
    child.once('exit', (code, signal) => {
      if (this.#newMaster === child) this.#newMaster = null;
      this.enqueue({ type: 'newMasterExited', pid: child.pid ?? -1, code, signal });
    });
  }

  /** After a reload: move the master's logs and pid file where the new config says (nginx does the same). */
  #applyMasterSettings(previous: Config): void {
    const next = this.#state.config;
    if (JSON.stringify(previous.log) !== JSON.stringify(next.log)) {
      const old = this.#logs;
      this.#logs = createLogs(next.log, { role: 'master' });
      old.error.info({ log: next.log }, 'error log moves as the new configuration says');
      old.flush();
    }
    if (previous.pidFile !== next.pidFile && this.#state.upgrade === null && this.#pidFile === previous.pidFile) {
      try {
        writePidFile(next.pidFile);
        removePidFileIfOurs(previous.pidFile);
        this.#pidFile = next.pidFile;
      } catch (err) {
        this.log.error({ err: (err as Error).message, pidFile: next.pidFile }, 'cannot move the pid file; keeping the old one');
      }
    }
  }

  #clearUpgradeTimer(): void {
    if (this.#upgradeTimer) clearTimeout(this.#upgradeTimer);
    this.#upgradeTimer = null;
  }

  #exit(code: number): never {
    this.#clearUpgradeTimer();
    this.#admin?.close();
    this.opts.registry.closeAll();
    removePidFileIfOurs(this.#pidFile);
    removePidFileIfOurs(oldbinPath(this.#pidFile));
    this.#logs.flush();
    process.exit(code);
  }

  status(): unknown {
    const s = this.#state;
    const workers = [];
    for (const g of this.#generations.values()) {
      for (const w of g.workers) {
        if (w && w.state !== 'exited') workers.push({ pid: w.pid, generation: g.id, state: w.state, connections: w.stats.connections, requests: w.stats.requests });
      }
    }
    const current = s.generations.filter((g) => g.status === 'active').map((g) => g.id).pop() ?? null;
    return {
      version: VERSION,
      pid: process.pid,
      phase: s.phase,
      config: this.opts.configFile,
      uptime: Math.round((Date.now() - this.opts.startedAt) / 1000),
      generation: current,
      generations: s.generations.map((g) => ({ id: g.id, status: g.status, workers: g.config.workers, restarts: this.#generations.get(g.id)?.restarts ?? 0 })),
      workers,
      listeners: this.opts.registry.entries().filter((e) => e.key !== this.#adminKey).map((e) => ({ listen: e.key, address: e.bound })),
      winched: s.winched,
      upgrade: s.upgrade
        ? { oldMaster: process.pid, newMaster: s.upgrade.pid, stage: s.upgrade.stage }
        : s.oldMasterAlive && this.opts.oldMaster !== null
          ? { oldMaster: this.opts.oldMaster, newMaster: process.pid, stage: 'ready' }
          : null,
      reloads: this.#metrics.reloads,
    };
  }

  metrics(): string {
    return this.#metrics.render({ version: VERSION, startedAt: this.opts.startedAt });
  }
}
