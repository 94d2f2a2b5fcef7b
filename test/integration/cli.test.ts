import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT, runCli } from '../helpers/daemon.js';

const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

function tmpConfig(t: { teardown(fn: () => void): void }, yaml: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'baton.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

t.test('-v prints the version from package.json', async (t) => {
  const r = await runCli(['-v']);
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), `baton ${version}`);
});

t.test('-h prints usage and exits 0; an unknown argument is a usage error', async (t) => {
  const help = await runCli(['-h']);
  t.equal(help.code, 0);
  t.match(help.stdout, /baton -s reload\|reopen\|quit\|stop\|upgrade/);
  const bad = await runCli(['--frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown argument "--frobnicate"/);
  const verb = await runCli(['-s', 'explode']);
  t.equal(verb.code, 2);
  t.match(verb.stderr, /unknown signal verb "explode"/);
});

t.test('-t accepts the shipped conf/baton.yaml', async (t) => {
  const r = await runCli(['-t', '-c', path.join(ROOT, 'conf/baton.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^configuration ok/);
});

t.test('-t reports every problem as file:line:col and exits 1', async (t) => {
  const file = tmpConfig(t, [
    'workers: many',
    'shutdown_timeout: 30 seconds',
    'listeners:',
    '  - listen: 127.0.0.1:99999',
    'upstreams:',
    '  app:',
    '    targets: [{ url: "http://127.0.0.1:9001" }]',
    'routes:',
    '  - path: /',
    '    upstream: nope',
    'colour: blue',
    '',
  ].join('\n'));
  const r = await runCli(['-t', '-c', file]);
  t.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith(file));
  t.ok(lines.length >= 5, `all problems reported at once:\n${r.stderr}`);
  t.match(r.stderr, new RegExp(`${file}:1:10: .*workers`));
  t.match(r.stderr, new RegExp(`${file}:2:19: .*`));
  t.match(r.stderr, new RegExp(`${file}:4:13: .*`));
  t.match(r.stderr, new RegExp(`${file}:10:15: .*nope`));
  t.match(r.stderr, new RegExp(`${file}:11:1: .*colour`));
});

t.test('-s with no pid file says so and exits 3', async (t) => {
  const file = tmpConfig(t, 'listeners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n');
  const r = await runCli(['-s', 'reload', '-c', file]);
  t.equal(r.code, 3);
  t.match(r.stderr, /pid file .*baton\.pid does not exist/);
});

t.test('-s with a pid file naming no process says so and exits 3', async (t) => {
  const file = tmpConfig(t, 'listeners: [{ listen: "127.0.0.1:0" }]\nroutes: [{ path: /, return: { status: 200 } }]\n');
  // pid_max is at most 2^22 on Linux: this pid cannot exist.
  fs.writeFileSync(path.join(path.dirname(file), 'baton.pid'), '4194305\n');
  const r = await runCli(['-s', 'quit', '-c', file]);
  t.equal(r.code, 3);
  t.match(r.stderr, /names process 4194305, which is not running/);
});
