/**
 * @module Master entry: take inherited sockets, open the logs, install the signal queue and hand over to the
 * runtime. Wiring only. A failure here is written to the configured error log (with its stack) and, in a new
 * master, sent to the old one: this process's stderr may be a terminal closed long ago.
 */
import type { Config } from '../config/types.js';
import { createLogs, type OwnedLogs } from '../log/logger.js';
import { logWarnings } from '../log/warnings.js';
import { ListenerRegistry } from './listeners.js';
import { MasterRuntime } from './runtime.js';
import { installSignalQueue } from './signal-queue.js';
import { activatedFds } from './systemd.js';
import { initialState } from './state.js';
import { askForRateBuckets, OLD_MASTER, onOldMaster, reportStartupFailure, takeInherited } from './upgrade.js';
import { RateBuckets } from './rate-buckets.js';
import { missingInternals } from '../util/internals.js';
import { traceRole, traceStep } from '../util/startup-trace.js';

/** The master cannot start at all (the CLI exits 4 with its message). */
export class StartupError extends Error {}

/** How long a master that cannot start waits for its error log to open, so the reason is not lost. */
const LOG_WAIT_MS = 2000;

/** Runs until an exit effect ends the process. */
export async function runMaster(configFile: string, config: Config): Promise<void> {
  traceRole('master');
  traceStep('master code loaded');
  const startedAt = Date.now();
  const inherited = takeInherited();
  // A write to a terminal that has gone away must not become an uncaught exception.
  process.stderr.on('error', () => {});
  const logs = createLogs(config.log, { role: 'master' });
  try {
    start(configFile, config, logs, inherited, startedAt);
  } catch (err) {
    const e = err as Error;
    logs.error.fatal({ err: e }, `cannot start: ${e.message}`);
    await logs.settle(LOG_WAIT_MS);
    await reportStartupFailure(e.stack ?? e.message);
    throw new StartupError(e.message);
  }
}

function start(configFile: string, config: Config, logs: OwnedLogs, inherited: ReturnType<typeof takeInherited>, startedAt: number): void {
  // A Node or library release without an internal we rely on: stop now, naming it, not misbehave under load.
  const missing = missingInternals();
  if (missing.length) throw new Error(`this Node.js release (${process.version}) lacks internals baton relies on: ${missing.join(', ')}`);
  const registry = new ListenerRegistry();
  // Sockets from systemd (cold start) or from an old master (upgrade) are adopted before anything is bound.
  const adoptProblems = [...registry.adoptActivated(activatedFds()), ...registry.adopt(inherited.fds)];
  for (const p of adoptProblems) logs.error.warn(p);

  // A new binary goes on from its old master's rate-limit buckets (asked before its workers can ask it).
  const rates = new RateBuckets();
  if (inherited.oldMaster !== null) askForRateBuckets((b) => rates.restore(b));
  const runtime = new MasterRuntime(initialState(config, { oldMasterAlive: inherited.oldMaster !== null, firstGeneration: inherited.firstGeneration }), {
    configFile, logs, registry, oldMaster: inherited.oldMaster, startedAt, rates,
  });
  logWarnings(() => runtime.log);
  installSignalQueue((e) => runtime.enqueue(e), { onTerminal: Boolean(process.stdin.isTTY) });
  process.on('uncaughtException', (err) => runtime.log.error({ err }, 'uncaught exception in master (carrying on)'));
  process.on('unhandledRejection', (err) => runtime.log.error({ err }, 'unhandled rejection in master (carrying on)'));
  if (inherited.oldMaster !== null) {
    process.on('disconnect', () => {
      runtime.relay.gone(OLD_MASTER);
      runtime.enqueue({ type: 'oldMasterGone' });
    });
    onOldMaster(() => runtime.enqueue({ type: 'adminHandedOver' }), (msg, handle) => runtime.relay.receive(OLD_MASTER, msg, handle));
  }
  runtime.log.info({ config: configFile, workers: config.workers, node: process.version, upgradeFrom: inherited.oldMaster ?? undefined }, 'master started');
  traceStep('master started');
}
