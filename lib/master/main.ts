/**
 * @module Master entry: load the config, take inherited sockets, open the admin listener, install the
 * signal queue and hand over to the runtime. Wiring only.
 */
import { execFileSync } from 'node:child_process';
import type { Config } from '../config/types.js';
import { createLogs } from '../log/logger.js';
import { ListenerRegistry } from './listeners.js';
import { MasterRuntime } from './runtime.js';
import { installSignalQueue } from './signal-queue.js';
import { activatedFds } from './systemd.js';
import { initialState } from './state.js';
import { takeInherited, tellOldMaster } from './upgrade.js';
import type { WorkerIdentity } from './worker-handle.js';

/** Resolve `user:` to uid/gid when we run as root; workers drop to it, the master keeps root for binding. */
function workerIdentity(user: string | null): WorkerIdentity {
  if (!user || typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** Returns an exit code only when the master could not start; otherwise it runs until an exit effect. */
export async function runMaster(configFile: string, config: Config): Promise<number | undefined> {
  const startedAt = Date.now();
  const inherited = takeInherited();
  const fail = (message: string): number => {
    if (inherited.oldMaster !== null) tellOldMaster({ type: 'upgrade-failed', message });
    return 1;
  };
  const logs = createLogs(config.log, { role: 'master' });
  const registry = new ListenerRegistry();
  // Sockets from systemd (cold start) or from an old master (upgrade) are adopted before anything is bound.
  const adoptProblems = [...registry.adoptActivated(activatedFds()), ...registry.adopt(inherited.fds)];
  for (const p of adoptProblems) logs.error.warn(p);

  let identity: WorkerIdentity;
  try {
    identity = workerIdentity(config.user);
  } catch {
    logs.error.error({ user: config.user }, 'cannot start: unknown user');
    logs.flush();
    return fail(`unknown user ${config.user}`);
  }

  const runtime = new MasterRuntime(initialState(config, { oldMasterAlive: inherited.oldMaster !== null, firstGeneration: inherited.firstGeneration }), {
    configFile, logs, registry, identity, oldMaster: inherited.oldMaster, startedAt,
  });
  installSignalQueue((e) => runtime.enqueue(e), { onTerminal: Boolean(process.stdin.isTTY) });
  process.on('uncaughtException', (err) => logs.error.error({ err }, 'uncaught exception in master (carrying on)'));
  process.on('unhandledRejection', (err) => logs.error.error({ err }, 'unhandled rejection in master (carrying on)'));
  if (inherited.oldMaster !== null) process.on('disconnect', () => runtime.enqueue({ type: 'oldMasterGone' }));
  try {
    await runtime.startAdmin();
  } catch (err) {
    logs.error.error({ err: (err as Error).message }, 'cannot open the admin listener');
    runtime.enqueue({ type: 'stop' });
  }
  logs.error.info({ config: configFile, workers: config.workers, upgradeFrom: inherited.oldMaster ?? undefined }, 'master started');
  return undefined;
}
