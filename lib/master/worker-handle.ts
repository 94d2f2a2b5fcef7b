/**
 * @module One worker child process: spawn it with the listening fds, send its config snapshot, follow its state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/types.js';
import { isWorkerToMaster, WORKER_ENV, INHERIT_ENV, type ListenerFd, type MasterToWorker, type WorkerStats, type WorkerToMaster } from '../ipc/messages.js';
import type { ListenerEntry } from './listeners.js';

/** The worker entry is located, never imported: master and worker code stay apart. */
const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));

/** stdio slots 0-2 are the standard streams, 3 is the IPC channel; listening sockets follow. */
const FIRST_LISTENER_FD = 4;

export type WorkerState = 'starting' | 'ready' | 'draining' | 'exited';

export interface WorkerIdentity {
  readonly uid?: number;
  readonly gid?: number;
}

export class WorkerHandle {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  state: WorkerState = 'starting';
  stats: WorkerStats = { connections: 0, requests: 0 };
  fatal: string | null = null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly slot: number,
    generation: number,
    config: Config,
    listeners: readonly ListenerEntry[],
    identity: WorkerIdentity,
    onMessage: (w: WorkerHandle, msg: WorkerToMaster) => void,
    onExit: (w: WorkerHandle) => void,
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_ENV]: String(generation) };
    delete env[INHERIT_ENV];
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    this.child = spawn(process.execPath, [WORKER_MAIN], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...listeners.map((l) => l.handle.fd)],
      env,
      ...identity,
    });
    const fds: ListenerFd[] = listeners.map((l, i) => ({ key: l.key, fd: FIRST_LISTENER_FD + i }));
    this.child.on('message', (msg: unknown) => {
      if (!isWorkerToMaster(msg)) return;
      if (msg.type === 'ready' && this.state === 'starting') this.state = 'ready';
      else if (msg.type === 'stats') this.stats = msg.stats;
      else if (msg.type === 'fatal') this.fatal = msg.message;
      onMessage(this, msg);
    });
    // An IPC write to a dying child fails asynchronously; the exit event tells the real story.
    this.child.on('error', () => {});
    this.child.on('exit', (code, signal) => {
      this.state = 'exited';
      this.exit = { code, signal };
      onExit(this);
    });
    this.send({ type: 'start', generation, config, listeners: fds });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  send(msg: MasterToWorker): void {
    if (this.child.connected) this.child.send(msg, () => {});
  }

  drain(): void {
    if (this.state === 'exited') return;
    this.state = 'draining';
    this.send({ type: 'drain' });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.state !== 'exited') this.child.kill(signal);
  }
}
