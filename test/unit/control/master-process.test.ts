/** @module Recognising a baton master by its command line before the CLI signals a pid from a pid file. */
import { spawn } from 'node:child_process';
import t from 'tap';
import { checkMaster, looksLikeMaster } from '../../../lib/control/master-process.js';

t.test('command lines of masters: direct, through a symlinked global bin, with node options, by process title', async (t) => {
  t.ok(looksLikeMaster(['/usr/bin/node', '/opt/baton/bin/baton', '-c', '/etc/baton/baton.yaml']));
  t.ok(looksLikeMaster(['node', '/usr/local/bin/baton']));
  t.ok(looksLikeMaster(['/usr/bin/node', '--max-old-space-size=512', '/usr/local/bin/baton', '-c', 'x.yaml']));
  t.ok(looksLikeMaster(['/usr/bin/node', '-r', '/opt/preload.js', '/usr/local/bin/baton']));
  t.ok(looksLikeMaster(['baton: master']));
});

t.test('other processes, baton workers and baton used as a command-line tool are not masters', async (t) => {
  t.notOk(looksLikeMaster(['sleep', '300']));
  t.notOk(looksLikeMaster(['/usr/bin/node', '/opt/baton/dist/lib/worker/main.js']));
  t.notOk(looksLikeMaster(['/usr/bin/node', '/opt/app/server.js', '--name', 'baton.yaml']));
  t.notOk(looksLikeMaster(['/usr/bin/node', '/usr/local/bin/baton', '-s', 'reload']));
  t.notOk(looksLikeMaster(['/usr/bin/node', '/usr/local/bin/baton', 'status']));
  t.notOk(looksLikeMaster(['/usr/bin/node', '/usr/local/bin/baton', '--daemon', '-c', 'x']), 'the --daemon launcher, which never owns the pid file');
  t.notOk(looksLikeMaster([]));
});

t.test('a live process is read from /proc; a pid that is gone cannot be checked', async (t) => {
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => { sleeper.kill('SIGKILL'); });
  await new Promise((r) => sleeper.once('spawn', r));
  // 'spawn' can come before the child's exec shows in /proc on a busy machine (an empty command line): look again,
  // a bounded number of times.
  let seen = checkMaster(sleeper.pid!);
  for (let i = 0; i < 100 && JSON.stringify(seen) !== JSON.stringify({ kind: 'other', cmdline: 'sleep 30' }); i++) {
    await new Promise((r) => setTimeout(r, 20));
    seen = checkMaster(sleeper.pid!);
  }
  t.same(seen, { kind: 'other', cmdline: 'sleep 30' });
  t.same(checkMaster(4194305), { kind: 'unknown' }, 'above pid_max: no such process');
});
