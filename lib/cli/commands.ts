/**
 * @module The CLI's commands that talk to a running master: -s, reload, upgrade, status, and the --daemon launcher.
 */
import { spawn } from 'node:child_process';
import type { Config } from '../config/types.js';
import { signalForVerb } from '../control/signals.js';
import { oldbinPath, processAlive, readPidFile } from '../control/pid-file.js';
import { EXIT } from '../control/exit-codes.js';
import { adminBase, adminCall, childrenOf, waitFor } from './control-client.js';

type Out = (line: string) => void;

function runningMaster(config: Config, err: Out): number | null {
  const read = readPidFile(config.pidFile);
  if (!read.ok) {
    err(`baton: ${read.reason}`);
    return null;
  }
  if (!processAlive(read.pid)) {
    err(`baton: pid file ${config.pidFile} names process ${read.pid}, which is not running`);
    return null;
  }
  return read.pid;
}

export function signalCommand(config: Config, verb: string, err: Out): number {
  const pid = runningMaster(config, err);
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
  if (runningMaster(config, err) === null) return EXIT.NOT_RUNNING;
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

export async function upgradeCommand(config: Config, out: Out, err: Out): Promise<number> {
  const old = runningMaster(config, err);
  if (old === null) return EXIT.NOT_RUNNING;
  process.kill(old, 'SIGUSR2');
  out(`USR2 sent to master ${old}; waiting for the new master`);
  const oldbin = oldbinPath(config.pidFile);
  // The old master renames its pid file first; if it never does, it refused the upgrade (its log says why).
  const renamed = await waitFor(5000, () => {
    const ob = readPidFile(oldbin);
    return ob.ok && ob.pid === old ? true : undefined;
  });
  if (!renamed) {
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
  if (!outcome || !outcome.ok) {
    err(`upgrade failed: the new master did not become ready${outcome ? '' : ' in time'}; master ${old} keeps serving (see the error log for why)`);
    return EXIT.OPERATION_FAILED;
  }
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

export async function statusCommand(config: Config, out: Out, err: Out): Promise<number> {
  const base = adminBase(config);
  if (!base) {
    err('baton: status needs the admin listener (admin.listen with a fixed port)');
    return EXIT.USAGE;
  }
  try {
    const res = await adminCall(base, 'GET', '/status', 5000);
    const s = JSON.parse(res.body) as {
      version: string; pid: number; phase: string; generation: number | null; uptime: number;
      workers: { pid: number; generation: number; state: string; connections: number; requests: number }[];
      listeners: { listen: string; address: string }[];
      upgrade: { oldMaster: number; newMaster: number | null; stage: string } | null;
    };
    out(`baton ${s.version}  master ${s.pid}  ${s.phase}  generation ${s.generation ?? '-'}  up ${s.uptime}s`);
    if (s.upgrade) out(`upgrade: old master ${s.upgrade.oldMaster} → new master ${s.upgrade.newMaster ?? '(starting)'} (${s.upgrade.stage})`);
    for (const l of s.listeners) out(`listen   ${l.listen}${l.address !== l.listen ? ` (${l.address})` : ''}`);
    for (const w of s.workers) out(`worker   ${w.pid}  gen ${w.generation}  ${w.state.padEnd(8)}  ${w.connections} conns  ${w.requests} reqs`);
    return EXIT.OK;
  } catch (e) {
    err(`baton: status: ${(e as Error).message}`);
    return EXIT.NOT_RUNNING;
  }
}

/** --daemon: start the master detached; exit 0 only once it serves and its pid file names it. */
export async function daemonCommand(config: Config, argv: readonly string[], err: Out): Promise<number> {
  const args = argv.filter((a) => a !== '--daemon' && a !== '-d');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
  let exited: number | null = null;
  child.on('exit', (code) => { exited = code ?? 1; });
  const ok = await waitFor(config.upgradeTimeout, () => {
    if (exited !== null) return false;
    const read = readPidFile(config.pidFile);
    return read.ok && read.pid === child.pid ? true : undefined;
  });
  if (ok) {
    child.unref();
    return EXIT.OK;
  }
  err(`baton: the master did not start${exited !== null ? ` (exit code ${exited})` : ' in time'}`);
  if (exited === null) child.kill('SIGTERM');
  return EXIT.STARTUP_FAILED;
}
