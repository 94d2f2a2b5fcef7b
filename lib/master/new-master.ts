/**
 * @module The old master's side of an upgrade in progress: the new master's process (its spawn, messages and exit
 * turned into events), the deadline for its "ready", its kill, the admin hand-over message, and the channel that
 * hand-offs take between the two masters.
 */
import type { ChildProcess } from 'node:child_process';
import type { MasterBoundary } from './boundary.js';
import type { HandoffEndpoint } from './handoff-relay.js';
import type { ListenerEntry } from './listeners.js';
import type { MasterEvent } from './state.js';
import { isHandoffMessage, type HandoffMessage } from '../ipc/messages.js';
import { traceStep } from '../util/startup-trace.js';

/** Where the new master's hand-off messages go (the relay), and its channel closing. */
export interface PeerHandoffs {
  receive(msg: HandoffMessage, handle: unknown): void;
  gone(): void;
}

/** A new master told to stop gets this long before SIGKILL. */
const KILL_GRACE_MS = 3000;

export class NewMaster {
  #child: ChildProcess | null = null;
  #deadline: NodeJS.Timeout | null = null;

  constructor(
    private readonly world: Pick<MasterBoundary, 'spawnNewMaster'>,
    private readonly enqueue: (e: MasterEvent) => void,
    private readonly handoffs: PeerHandoffs | null = null,
    /** The rate-limit buckets as they are now, for a new master that asks. */
    private readonly buckets: () => unknown = () => [],
  ) {}

  /** The new master as the other end of hand-offs. */
  readonly endpoint: HandoffEndpoint = {
    name: 'the new master',
    master: true,
    send: (msg, handle, cb) => {
      const child = this.#child;
      if (child?.connected) child.send(msg, handle as never, undefined, cb);
      else queueMicrotask(() => cb(new Error('no channel to the new master')));
    },
  };

  /** Its channel is open (hand-offs can go to it). */
  get connected(): boolean {
    return this.#child?.connected === true;
  }

  spawn(listeners: readonly ListenerEntry[], firstGeneration: number): void {
    let child: ChildProcess;
    traceStep('spawn new master');
    try {
      child = this.world.spawnNewMaster(listeners, firstGeneration, (msg, handle) => {
        if (isHandoffMessage(msg)) this.handoffs?.receive(msg, handle);
        else if (msg.type === 'upgrade-ready') this.enqueue({ type: 'newMasterReady', pid: msg.pid });
        else if (msg.type === 'upgrade-failed') this.enqueue({ type: 'newMasterFailed', pid: msg.pid, reason: msg.reason });
        else if (this.#child?.connected) this.#child.send({ type: 'rate-buckets', buckets: this.buckets() }, () => {});
      });
    } catch (err) {
      // EBADF, EINVAL...: thrown rather than emitted. The upgrade fails instead of staying in progress forever.
      this.enqueue({ type: 'newMasterSpawnFailed', reason: (err as Error).message });
      return;
    }
    this.#child = child;
    traceStep('new master spawned', { child: child.pid });
    child.once('disconnect', () => this.handoffs?.gone());
    child.once('spawn', () => this.enqueue({ type: 'newMasterSpawned', pid: child.pid! }));
    // Only a spawn that made no process is a spawn failure; later errors (IPC, kill) are followed by an exit.
    child.on('error', (err) => { if (child.pid === undefined) this.enqueue({ type: 'newMasterSpawnFailed', reason: err.message }); });
    child.once('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      this.enqueue({ type: 'newMasterExited', pid: child.pid ?? -1, code, signal });
    });
  }

  armDeadline(ms: number): void {
    this.disarm();
    this.#deadline = setTimeout(() => this.enqueue({ type: 'upgradeDeadline' }), ms);
  }

  disarm(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = null;
  }

  kill(pid: number): void {
    const child = this.#child;
    if (!child || child.pid !== pid) return;
    child.kill('SIGTERM');
    setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, KILL_GRACE_MS).unref();
  }

  /** This master no longer answers on the admin socket: the new master may. */
  handOverAdmin(): void {
    if (this.#child?.connected) this.#child.send({ type: 'admin-handover' }, () => {});
  }
}
