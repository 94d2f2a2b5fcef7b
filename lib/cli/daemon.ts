/**
 * @module `baton --daemon`: start the master detached and return once it serves. The master never writes to the
 * launching terminal: stdin and stdout are /dev/null and its stderr is the error log file (config checks refuse
 * `stderr`/`stdout` logs with --daemon), so whatever reaches fd 2 before the logger is up, or from Node itself,
 * lands where the operator looks. The launcher prints the master's pid and where its logs go, or, when the master
 * fails, the lines it wrote to the error log meanwhile.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Config, LogDestination } from '../config/types.js';
import { EXIT } from '../control/exit-codes.js';
import { readPidFile } from '../control/pid-file.js';
import { waitFor } from './control-client.js';
import type { Out } from './running-master.js';

/** At most this many lines of a failed start's error log are shown. */
const SHOWN_LINES = 20;

const where = (d: LogDestination | null) => (d === null ? 'off' : d.kind === 'file' ? d.path : d.kind);

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Lines appended to `file` after `offset`: each JSON line shown by its message (and error), others as written. */
function linesSince(file: string, offset: number): string[] {
  let text = '';
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const length = Math.max(0, fs.fstatSync(fd).size - offset);
      const buf = Buffer.alloc(Math.min(length, 1 << 20));
      fs.readSync(fd, buf, 0, buf.length, Math.max(offset, fs.fstatSync(fd).size - buf.length));
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).slice(-SHOWN_LINES).map((line) => {
    try {
      const j = JSON.parse(line) as { msg?: unknown; err?: unknown };
      const e = typeof j.err === 'string' ? j.err : (j.err as { message?: unknown } | undefined)?.message;
      return typeof j.msg === 'string' ? `${j.msg}${e ? `: ${String(e)}` : ''}` : line;
    } catch {
      return line;
    }
  });
}

export async function daemonCommand(config: Config, argv: readonly string[], out: Out, err: Out): Promise<number> {
  // Config checks (preflight with daemon: true) made sure the error log is a file.
  const errorLog = config.log.error.kind === 'file' ? config.log.error.path : null;
  if (errorLog === null) {
    err('baton: --daemon needs log.error to be a file');
    return EXIT.CONFIG_INVALID;
  }
  let fd: number;
  try {
    fs.mkdirSync(path.dirname(errorLog), { recursive: true });
    fd = fs.openSync(errorLog, 'a', 0o640);
  } catch (e) {
    err(`baton: cannot open the error log ${errorLog}: ${(e as Error).message}`);
    return EXIT.STARTUP_FAILED;
  }
  const offset = sizeOf(errorLog);
  const args = argv.filter((a) => a !== '--daemon' && a !== '-d');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { detached: true, stdio: ['ignore', 'ignore', fd] });
  fs.closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code, signal) => { exited = code ?? (signal ? 128 : 1); });
  const ok = await waitFor(config.upgradeTimeout, () => {
    if (exited !== null) return false;
    const read = readPidFile(config.pidFile);
    return read.ok && read.pid === child.pid ? true : undefined;
  });
  if (ok) {
    child.unref();
    out(`baton: master ${child.pid} is serving (pid file ${config.pidFile})`);
    out(`  error log: ${errorLog}`);
    out(`  access log: ${where(config.log.access)}`);
    return EXIT.OK;
  }
  if (exited === null) child.kill('SIGTERM');
  err(`baton: the master did not start${exited !== null ? ` (exit code ${exited})` : ` within upgrade_timeout (${config.upgradeTimeout} ms); stopped it`}`);
  const lines = linesSince(errorLog, offset);
  if (lines.length) {
    err(`its error log (${errorLog}) says:`);
    for (const l of lines) err(`  ${l}`);
  }
  return EXIT.STARTUP_FAILED;
}
