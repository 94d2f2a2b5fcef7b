import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ROOT, withoutTapHook } from '../helpers/daemon.js';

// strace slows every process it follows: a whole start, reload, reopen, upgrade and stop takes a while on a busy machine.
t.setTimeout(300_000);

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

t.test('every system call baton makes (start, requests, reload, reopen, upgrade, stop) passes the unit\'s SystemCallFilter', { skip: hasCommand('strace') ? false : 'needs strace' }, async (t) => {
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    // Without tap's hook, whose own calls (a loader thread, its records) are no part of what baton makes.
    execFile(...withoutTapHook(path.join(ROOT, 'scripts/syscall-audit'), ['--node', process.execPath]), { timeout: 280_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }));
  });
  t.equal(r.code, 0, r.out);
  t.match(r.out, /^all allowed by conf\/baton\.service$/m, r.out);
});

