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
import { missingInternals } from '../util/internals.js';

/** The master cannot start at all (the CLI exits 4 with its message). */
export class StartupError extends Error {}

/** Runs until an exit effect ends the process. */
export async function runMaster(configFile: string, config: Config): Promise<void> {
  const startedAt = Date.now();
  const inherited = takeInherited();
  const logs = createLogs(config.log, { role: 'master' });
  // A Node or library release without an internal we rely on: stop now, naming it, not misbehave under load.
  const missing = missingInternals();
  if (missing.length) {
    const message = `this Node.js release (${process.version}) lacks internals baton relies on: ${missing.join(', ')}`;
    logs.error.fatal({ missing }, message);
    logs.flush();
    throw new StartupError(message);
  }
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
