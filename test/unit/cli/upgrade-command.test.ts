/**
 * @module `baton upgrade` against a master that fails an upgrade faster than the command looks: the pid file's
 * rename to .oldbin and back happens between two polls, and the command must still report a failed upgrade (exit 5),
 * not a refusal.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { upgradeCommand } from '../../../lib/cli/commands.js';
import type { Config } from '../../../lib/config/types.js';

/** A process that looks like a baton master and, on USR2, renames its pid file to .oldbin and back at once. */
function fakeMaster(pidFile: string, renameBack: boolean): Promise<number> {
  const script = `
    process.title = 'baton: master';
    const fs = require('node:fs');
    const pidFile = ${JSON.stringify(pidFile)};
    fs.writeFileSync(pidFile, process.pid + '\\n');
    process.on('SIGUSR2', () => {
      ${renameBack ? "fs.renameSync(pidFile, pidFile + '.oldbin'); fs.renameSync(pidFile + '.oldbin', pidFile);" : ''}
    });
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the fake master did not start')), 10_000);
    child.stdout.once('data', () => {
      clearTimeout(timer);
      resolve(child.pid!);
    });
  });
}

function configFor(pidFile: string): Config {
  return { pidFile, upgradeTimeout: 2000, shutdownTimeout: 1000, admin: null } as unknown as Config;
}

/** `baton upgrade` against a fake master in a temp dir: its pid, the exit code and what went to stderr. */
async function upgradeAgainst(t: Test, renameBack: boolean): Promise<{ pid: number; code: number; err: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-upgrade-cmd-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, 'baton.pid');
  const pid = await fakeMaster(pidFile, renameBack);
  const err: string[] = [];
  const code = await upgradeCommand(configFor(pidFile), () => {}, (l) => err.push(l));
  return { pid, code, err: err.join('\n') };
}

t.test('a new master that failed before the command saw the pid file renamed is reported as a failed upgrade, exit 5', async (t) => {
  const { pid, code, err } = await upgradeAgainst(t, true);
  t.equal(code, 5);
  t.match(err, `upgrade failed: the new master did not become ready; master ${pid} keeps serving`);
});

t.test('a master that never renames its pid file refused the upgrade, exit 5', async (t) => {
  const { pid, code, err } = await upgradeAgainst(t, false);
  t.equal(code, 5);
  t.match(err, `upgrade refused by master ${pid}`);
});
