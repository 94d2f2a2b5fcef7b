/**
 * @module Master entry: load the config, take inherited sockets, open the admin listener, install the
 * signal queue and hand over to the runtime. Wiring only.
 */
import type { Config } from '../config/types.js';
import { createLogs } from '../log/logger.js';
import { ListenerRegistry } from './listeners.js';
import { MasterRuntime } from './runtime.js';
import { installSignalQueue } from './signal-queue.js';
import { activatedFds } from './systemd.js';
import { initialState } from './state.js';
import { takeInherited } from './upgrade.js';

/** Runs until an exit effect ends the process. */
export async function runMaster(configFile: string, config: Config): Promise<void> {
  const startedAt = Date.now();
  const inherited = takeInherited();
  const logs = createLogs(config.log, { role: 'master' });
  const registry = new ListenerRegistry();
  // Sockets from systemd (cold start) or from an old master (upgrade) are adopted before anything is bound.
  const adoptProblems = [...registry.adoptActivated(activatedFds()), ...registry.adopt(inherited.fds)];
  for (const p of adoptProblems) logs.error.warn(p);

  // An unknown `user:` fails the first generation like any start-up problem: logged, exit code 4.
  const runtime = new MasterRuntime(initialState(config, { oldMasterAlive: inherited.oldMaster !== null, firstGeneration: inherited.firstGeneration }), {
    configFile, logs, registry, oldMaster: inherited.oldMaster, startedAt,
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
}
