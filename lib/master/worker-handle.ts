/**
 * @module One worker child process: spawn it with the listening fds, send its config snapshot, follow its state
 * until it has exited. A spawn that fails (thrown, or reported by an 'error' event with no process behind it)
 * ends the handle like an exit, so its slot is refilled and a drain can complete.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../version.js';
import type { Config } from '../config/types.js';
import { isWorkerToMaster, INHERIT_ENV, type HandoffMessage, type ListenerFd, type MasterToWorker, type WorkerStats, type WorkerToMaster } from '../ipc/messages.js';
import type { ListenerEntry } from './listeners.js';
import { traceStep } from '../util/startup-trace.js';

/**
 * The worker entry is located, never imported: master and worker code stay apart. From the package root, not from
 * this file, which may be inside the master's bundle (dist/bundle/cli.js).
 */
const WORKER_MAIN = path.join(PACKAGE_ROOT, 'dist/lib/worker/main.js');
/** The same code in one file (scripts/lib/bundle.mjs, run by `npm run build`): a worker loads it in half the CPU. */
const WORKER_BUNDLE = path.join(PACKAGE_ROOT, 'dist/bundle/worker/main.js');

/**
 * The bundle, unless it is missing or older than the compiled entry (a `tsc` run since the last `npm run build`):
 * a stale bundle would run code that is no longer on disk. Looked up at each spawn, as the entry file always was.
 */
export function workerEntry(): string {
  try {
    if (fs.statSync(WORKER_BUNDLE).mtimeMs >= fs.statSync(WORKER_MAIN).mtimeMs) return WORKER_BUNDLE;
  } catch {
    // no bundle (a build by tsc alone): the compiled files
  }
  return WORKER_MAIN;
}

/** stdio slots 0-2 are the standard streams, 3 is the IPC channel; listening sockets follow. */
const FIRST_LISTENER_FD = 4;

/**
 * Node's options for a worker, always given:
 * - `--no-warnings`: Node's own printer would write process warnings raw to stderr; the worker logs them as JSON.
 * - `--expose-gc`: for the collections (two at most) a worker makes when it goes quiet after work
 *   (worker/quiet-gc.ts), which give back the young generation a burst grew and the pages V8 keeps pooled.
 * - `--no-maglev`: Node 24 turned V8's mid-tier compiler on (Node 20 and 22 have it off). Its compilations left an
 *   idle Node 24 worker with about 17 MiB more of malloc'd memory (113 -> 96 MiB, scripts/memory-attribution
 *   --idle 9), and on a proxy's steady load TurboFan's code is what runs: CPU per request without it against with
 *   it within the machine's noise (scripts/lib/bench-ab.mjs: keep-alive 1.036, 1.083, 1.006, 0.877, 0.884,
 *   1.054; Connection: close 1.015; h2c 0.961). V8 takes it only on the command line (NODE_OPTIONS refuses it).
 */
const ALWAYS = ['--no-warnings', '--expose-gc', '--no-maglev'];

/**
 * Defaults that the service's `NODE_OPTIONS` overrides when it sets the same option (a command-line flag would
 * override NODE_OPTIONS, so it is left out). Node takes `_` for `-` in option names.
 * - `--max-semi-space-size=16`: the young generation's ceiling Node 20 and 22 choose for themselves, which Node 24
 *   doubled to 32 MiB per semi-space: a busy Node 24 worker kept 52 MiB of young generation instead of 26 (RSS
 *   159-160 against 134-141 MiB after 100 000 requests, scripts/memory-attribution; 282 against 172-175 MiB after
 *   scripts/memory-soak's million) for no CPU saved (bench-ab, with the flag against without: keep-alive 0.958 and
 *   1.030, Connection: close 0.871, h2c 0.982).
 * - `--v8-pool-size=1`: V8's background threads (parallel GC, concurrent compilation), 4 by default, each with its
 *   own malloc arena that keeps what its peak needed. A worker is one of a machine's `workers` processes, which
 *   already share the cores: one thread each left an idle worker 4 MiB (Node 20) and 7 MiB (Node 24) smaller, for
 *   CPU within the noise, perhaps 2 % (bench-ab, one thread against four: Node 24 keep-alive 1.016, 0.988, 1.033,
 *   1.013; Node 20 keep-alive 1.055, 0.979, close 0.982, h2c 1.005).
 */
const OVERRIDABLE: readonly (readonly [RegExp, string])[] = [
  [/(^|\s)--max[-_]semi[-_]space[-_]size\b/, '--max-semi-space-size=16'],
  [/(^|\s)--v8[-_]pool[-_]size\b/, '--v8-pool-size=1'],
];

export function workerFlags(nodeOptions: string | undefined = process.env.NODE_OPTIONS): string[] {
  const flags = [...ALWAYS];
  for (const [set, flag] of OVERRIDABLE) if (!set.test(nodeOptions ?? '')) flags.push(flag);
  return flags;
}

/** The process boundary: `child_process.spawn`, or a fake in unit tests. */
export type SpawnProcess = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

/** draining: told to drain, or leaving on its own (retiring after an uncaught exception). */
export type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

export interface WorkerIdentity {
  readonly uid?: number;
  readonly gid?: number;
}

export interface WorkerSpec {
  readonly slot: number;
  readonly generation: number;
  readonly config: Config;
  readonly listeners: readonly ListenerEntry[];
  readonly identity: WorkerIdentity;
  readonly spawn?: SpawnProcess;
}

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when no process ever ran: why the spawn failed. */
  readonly spawnError?: string;
}

export class WorkerHandle {
  readonly slot: number;
  readonly child: ChildProcess | null;
  readonly startedAt = Date.now();
  state: WorkerState = 'starting';
  /** It said ready once (a worker that dies before that could not start at all). */
  wasReady = false;
  stats: WorkerStats = { connections: 0, requests: 0 };
  /** The reason a worker gave for not starting, or for leaving on its own. */
  fatal: string | null = null;
  exit: WorkerExit | null = null;

  constructor(
    spec: WorkerSpec,
    /** `handle`: the descriptor a hand-off message carries (a raw handle), else undefined. */
    onMessage: (w: WorkerHandle, msg: WorkerToMaster, handle?: unknown) => void,
    private readonly onExit: (w: WorkerHandle) => void,
  ) {
    this.slot = spec.slot;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env[INHERIT_ENV];
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    let child: ChildProcess | null = null;
    traceStep('spawn worker', { slot: spec.slot, generation: spec.generation });
    try {
      child = (spec.spawn ?? spawn)(process.execPath, [...workerFlags(), workerEntry()], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...spec.listeners.map((l) => l.handle.fd)],
        env,
        ...spec.identity,
      });
    } catch (err) {
      // EBADF (a listening fd already closed), EINVAL...: thrown, not emitted. Reported after the constructor.
      const message = (err as Error).message;
      queueMicrotask(() => this.#ended({ code: null, signal: null, spawnError: message }));
    }
    this.child = child;
    traceStep('worker spawned', { slot: spec.slot, worker: child?.pid });
    if (child === null) return;
    const fds: ListenerFd[] = spec.listeners.map((l, i) => ({ key: l.key, fd: FIRST_LISTENER_FD + i }));
    child.on('message', (msg: unknown, handle?: unknown) => {
      if (!isWorkerToMaster(msg) || this.state === 'exited') return;
      if (msg.type === 'ready' && this.state === 'starting') {
        traceStep('worker ready received', { slot: this.slot, worker: child.pid });
        this.state = 'ready';
        this.wasReady = true;
      }
      else if (msg.type === 'stats') this.stats = msg.stats;
      else if (msg.type === 'fatal') this.fatal = msg.message;
      else if (msg.type === 'retiring') {
        this.fatal = msg.reason;
        this.state = 'draining';
      }
      onMessage(this, msg, handle);
    });
    child.on('error', (err) => {
      // ENOENT, EACCES, EAGAIN, EMFILE: no process, and no 'exit' will follow. With a pid, the error is a failed
      // IPC write or kill of a process whose 'exit' tells the real story.
      if (child.pid === undefined) this.#ended({ code: null, signal: null, spawnError: err.message });
    });
    child.on('exit', (code, signal) => this.#ended({ code, signal }));
    this.send({ type: 'start', generation: spec.generation, config: spec.config, listeners: fds });
  }

  #ended(exit: WorkerExit): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.exit = exit;
    if (exit.spawnError !== undefined) this.fatal ??= `cannot start a worker process: ${exit.spawnError}`;
    this.onExit(this);
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  /** How it ended, for log lines. */
  describeExit(): string {
    const e = this.exit;
    if (!e) return 'running';
    if (e.spawnError !== undefined) return `spawn failed: ${e.spawnError}`;
    return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
  }

  send(msg: MasterToWorker): void {
    if (this.child?.connected && this.state !== 'exited') this.child.send(msg, () => {});
  }

  /** `handoff`: a serving worker may take its connections now. */
  drain(handoff = false): void {
    if (this.state === 'exited') return;
    this.state = 'draining';
    this.send({ type: 'drain', handoff });
  }

  /** A hand-off message, with the descriptor it carries; `cb(err)` when it was not written. */
  sendHandoff(msg: HandoffMessage, handle: unknown, cb: (err: Error | null) => void): void {
    const child = this.child;
    if (!child?.connected || this.state === 'exited') {
      queueMicrotask(() => cb(new Error('worker channel closed')));
      return;
    }
    child.send(msg, handle as never, undefined, cb);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.state !== 'exited' && this.child?.pid !== undefined) this.child.kill(signal);
  }
}
