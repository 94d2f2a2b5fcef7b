/**
 * @module Binary upgrade, the mechanism: spawn a new master from the code now on disk with our listening
 * sockets as inherited fds (described by one environment variable) and an IPC channel back to us; and, on the
 * new master's side, read what it inherited and talk back (ready, or why it cannot start).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { INHERIT_ENV, isHandoffMessage, isNewMasterToOld, isOldMasterToNew, type HandoffMessage, type NewMasterToOld } from '../ipc/messages.js';
import type { HandoffEndpoint } from './handoff-relay.js';
import type { ListenerEntry } from './listeners.js';

/** Names the old master's pid in the new master's environment. */
export const UPGRADE_FROM_ENV = 'BATON_UPGRADE_FROM';
/** The generation number the new master starts at, so numbers never repeat across an upgrade. */
export const GENERATION_ENV = 'BATON_FIRST_GENERATION';

const FIRST_FD = 4;

/** The old master's pid, once takeInherited() has removed it from the environment. */
let upgradeFrom: number | null = null;

/** The bin path exactly as this master was started (argv[1]); Node resolves it, and any symlink, afresh. */
const STARTED_AS = { bin: process.argv[1], args: process.argv.slice(2), execArgv: process.execArgv, cwd: process.cwd() };

export function spawnNewMaster(listeners: readonly ListenerEntry[], firstGeneration: number, onMessage: (msg: NewMasterToOld, handle?: unknown) => void): ChildProcess {
  const map: Record<string, number> = {};
  listeners.forEach((l, i) => { map[l.key] = FIRST_FD + i; });
  const env: NodeJS.ProcessEnv = { ...process.env, [INHERIT_ENV]: JSON.stringify(map), [UPGRADE_FROM_ENV]: String(process.pid), [GENERATION_ENV]: String(firstGeneration) };
  const child = spawn(process.execPath, [...STARTED_AS.execArgv, STARTED_AS.bin, ...STARTED_AS.args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...listeners.map((l) => l.handle.fd)],
    env,
    cwd: STARTED_AS.cwd,
  });
  child.on('message', (msg: unknown, handle?: unknown) => {
    if (isNewMasterToOld(msg)) onMessage(msg, handle);
  });
  child.on('error', () => {});
  return child;
}

export interface Inherited {
  readonly fds: Record<string, number>;
  /** The old master's pid when this master is the new binary of an upgrade. */
  readonly oldMaster: number | null;
  readonly firstGeneration: number;
}

/** Read (and remove from the environment, so workers never see it) what an old master handed us. */
export function takeInherited(): Inherited {
  const raw = process.env[INHERIT_ENV];
  const from = Number(process.env[UPGRADE_FROM_ENV]);
  const gen = Number(process.env[GENERATION_ENV]);
  delete process.env[INHERIT_ENV];
  if (Number.isInteger(from) && from > 0) upgradeFrom = from;
  delete process.env[UPGRADE_FROM_ENV];
  delete process.env[GENERATION_ENV];
  let fds: Record<string, number> = {};
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as unknown;
      if (parsed && typeof parsed === 'object') {
        for (const [k, v] of Object.entries(parsed)) if (Number.isInteger(v)) fds[k] = v as number;
      }
    } catch {
      fds = {};
    }
  }
  return {
    fds,
    oldMaster: Number.isInteger(from) && from > 0 && typeof process.send === 'function' ? from : null,
    firstGeneration: Number.isInteger(gen) && gen > 0 ? gen : 1,
  };
}

export function tellOldMaster(msg: NewMasterToOld): void {
  if (process.send && process.connected) process.send(msg, () => {});
}

/** New master: ask the old one for its rate-limit buckets; `take` gets them when they come. */
export function askForRateBuckets(take: (buckets: unknown) => void): void {
  process.on('message', (msg: unknown) => {
    if (isOldMasterToNew(msg) && msg.type === 'rate-buckets') take(msg.buckets);
  });
  tellOldMaster({ type: 'rate-buckets-request' });
}

/** New master: the old one stopped serving the admin listener; or it sends a hand-off message (with a descriptor). */
export function onOldMaster(handover: () => void, handoff: (msg: HandoffMessage, handle: unknown) => void): void {
  process.on('message', (msg: unknown, handle?: unknown) => {
    if (!isOldMasterToNew(msg)) return;
    if (isHandoffMessage(msg)) handoff(msg, handle);
    else if (msg.type === 'admin-handover') handover();
  });
}

/** New master: the old master as the other end of hand-offs (a rollback sends connections back to it). */
export const OLD_MASTER: HandoffEndpoint = {
  name: 'the old master',
  master: true,
  send: (msg, handle, cb) => {
    if (process.send && process.connected) process.send(msg, handle as never, undefined, cb);
    else queueMicrotask(() => cb(new Error('no channel to the old master')));
  },
};

/**
 * A new master that cannot start says why to the old one, which logs it in the configured error log and shows it
 * in /status (this process's stderr may be a terminal closed long ago). No-op outside an upgrade. Resolves once
 * the message is written, so that the caller may exit.
 */
export function reportStartupFailure(reason: string): Promise<void> {
  if (!process.env[UPGRADE_FROM_ENV] && !upgradeFrom) return Promise.resolve();
  if (!process.send || !process.connected) return Promise.resolve();
  const msg: NewMasterToOld = { type: 'upgrade-failed', pid: process.pid, reason };
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    process.send!(msg, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
