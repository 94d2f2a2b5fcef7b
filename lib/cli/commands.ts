/**
 * @module The CLI's commands that act on a running master: -s, reload and upgrade. Each finds the master through
 * its pid file (checked: a live baton master) before it signals anything.
 */
import fs from 'node:fs';
import type { Config } from '../config/types.js';
import { signalForVerb } from '../control/signals.js';
import { oldbinPath, processAlive, readPidFile } from '../control/pid-file.js';
import { EXIT } from '../control/exit-codes.js';
import { adminBase, adminCall, childrenOf, waitFor } from './control-client.js';
import { runningMaster, type Out } from './running-master.js';
import { lastUpgradeFailure } from './status.js';

export function signalCommand(pidFile: string, verb: string, err: Out): number {
  const pid = runningMaster(pidFile, err);
  if (pid === null) return EXIT.NOT_RUNNING;
  const signal = signalForVerb(verb)!;
  try {
    process.kill(pid, signal);
  } catch (e) {
    err(`baton: cannot send ${signal} to ${pid}: ${(e as Error).message}`);
    return EXIT.NOT_RUNNING;
  }
  return EXIT.OK;
}

export async function reloadCommand(config: Config, out: Out, err: Out): Promise<number> {
  const base = adminBase(config);
  if (!base) {
    err('baton: reload needs the admin listener (admin.listen with a fixed port) to report the outcome; use -s reload to only send HUP');
    return EXIT.USAGE;
  }
  if (runningMaster(config.pidFile, err) === null) return EXIT.NOT_RUNNING;
  try {
    const res = await adminCall(base, 'POST', '/reload', config.shutdownTimeout + 60_000);
    const outcome = JSON.parse(res.body) as { ok: boolean; generation?: number; errors?: string[] };
    if (outcome.ok) {
      out(`reload ok: generation ${outcome.generation} is serving`);
      return EXIT.OK;
    }
    err('reload failed, nothing changed:');
    for (const e of outcome.errors ?? []) err(`  ${e}`);
    return EXIT.OPERATION_FAILED;
  } catch (e) {
    err(`baton: reload: ${(e as Error).message}`);
    return EXIT.OPERATION_FAILED;
  }
}

/** The pid file's inode change time: a rename (to .oldbin and back) changes it even when the content does not. */
function pidFileChanged(path: string): number | null {
  try {
    return fs.statSync(path).ctimeMs;
  } catch {
    return null;
  }
}

export async function upgradeCommand(config: Config, out: Out, err: Out): Promise<number> {
  const old = runningMaster(config.pidFile, err);
  if (old === null) return EXIT.NOT_RUNNING;
  const stamp = pidFileChanged(config.pidFile);
  process.kill(old, 'SIGUSR2');
  out(`USR2 sent to master ${old}; waiting for the new master`);
  const oldbin = oldbinPath(config.pidFile);
  // The old master renames its pid file first; if it never does, it refused the upgrade (its log says why).
  const renamed = await waitFor(5000, () => {
    const ob = readPidFile(oldbin);
    return ob.ok && ob.pid === old ? true : undefined;
  });
  if (!renamed) {
    // A new master that fails at once can come and go between two looks: the old master renamed its pid file and
    // put it back, which the file's change time still shows.
    if (pidFileChanged(config.pidFile) !== stamp) return upgradeFailed(config, old, err, '');
    err(`upgrade refused by master ${old} (an upgrade already in progress, or it is itself a new binary whose old master still runs); see the error log`);
    return EXIT.OPERATION_FAILED;
  }
  const outcome = await waitFor(config.upgradeTimeout + 5000, () => {
    const cur = readPidFile(config.pidFile);
    if (cur.ok && cur.pid !== old && processAlive(cur.pid)) return { ok: true as const, pid: cur.pid };
    // The old master put its pid file back: the new one failed before it was ready.
    if (!readPidFile(oldbin).ok && cur.ok && cur.pid === old) return { ok: false as const };
    if (!processAlive(old)) return { ok: false as const };
    return undefined;
  });
  if (!outcome || !outcome.ok) return upgradeFailed(config, old, err, outcome ? '' : ' in time');
  out(`new master ${outcome.pid} is serving`);
  process.kill(old, 'SIGWINCH');
  out(`WINCH sent to old master ${old}; waiting for its workers to drain`);
  const drained = await waitFor(config.shutdownTimeout + 10_000, () => (childrenOf(old).every((p) => p === outcome.pid) ? true : undefined));
  if (!drained) out(`old workers still running after ${config.shutdownTimeout} ms; quitting the old master anyway`);
  else out('old workers have left');
  process.kill(old, 'SIGQUIT');
  out(`QUIT sent to old master ${old}`);
  const gone = await waitFor(10_000, () => (processAlive(old) ? undefined : true));
  if (!gone) {
    err(`old master ${old} has not exited yet`);
    return EXIT.OPERATION_FAILED;
  }
  out(`upgrade done: master ${outcome.pid}`);
  return EXIT.OK;
}

async function upgradeFailed(config: Config, old: number, err: Out, late: string): Promise<number> {
  err(`upgrade failed: the new master did not become ready${late}; master ${old} keeps serving`);
  const reason = await lastUpgradeFailure(config);
  err(reason !== null ? `  reason: ${reason}` : '  the error log says why');
  return EXIT.OPERATION_FAILED;
}
