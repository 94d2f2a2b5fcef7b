import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, Daemon, ROOT, freePort } from '../helpers/daemon.js';

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

/** conf/baton.service with its install paths pointed at this checkout and `dir` (systemd-analyze verify checks that ExecStart's binary exists). */
function unitHere(dir: string, config = '/etc/baton/baton.yaml'): string {
  const file = path.join(dir, 'baton.service');
  fs.writeFileSync(file, fs.readFileSync(path.join(ROOT, 'conf/baton.service'), 'utf8').replaceAll('/usr/local/bin/baton', BIN).replaceAll('/etc/baton/baton.yaml', config));
  return file;
}

const analyze = (args: string[]) => new Promise<{ code: number; out: string }>((resolve) => {
  execFile('systemd-analyze', args, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }));
});

t.test('systemd-analyze verify accepts conf/baton.service', async (t) => {
  const d = new Daemon(t);
  const r = await analyze(['verify', unitHere(d.dir)]);
  t.equal(r.code, 0, r.out);
  t.equal(r.out.trim(), '', 'no warnings');
});

t.test('systemd-analyze security rates conf/baton.service at 4.0 or below', async (t) => {
  const r = await analyze(['security', '--offline=yes', path.join(ROOT, 'conf/baton.service')]);
  const score = /Overall exposure level for baton\.service: (\d+\.\d+)/.exec(r.out);
  if (!score) throw new Error(`no overall exposure level in:\n${r.out}`);
  t.ok(Number(score[1]) <= 4.0, `exposure ${score[1]} (at most 4.0)`);
});

/** The command line of a unit setting, split as systemd would for these simple lines. */
function unitCommand(unit: string, key: string): string[] {
  const line = new RegExp(`^${key}=(.*)$`, 'm').exec(fs.readFileSync(unit, 'utf8'));
  if (!line) throw new Error(`${key}= is not in ${unit}`);
  return line[1]!.trim().split(/\s+/);
}

t.test('the unit\'s ExecStartPre checks the config and its ExecReload fails when a reload fails, so systemctl reload reports it', async (t) => {
  const adminPort = await freePort();
  const d = new Daemon(t);
  const unit = unitHere(d.dir, d.configFile);
  d.writeConfig({ body: BODY, adminPort });
  const run = (key: string) => {
    const [cmd, ...args] = unitCommand(unit, key);
    return new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [cmd!, ...args], { cwd: d.dir }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }));
    });
  };
  const pre = await run('ExecStartPre');
  t.equal(pre.code, 0, pre.out);
  await d.start({ body: BODY, adminPort });
  const good = await run('ExecReload');
  t.equal(good.code, 0, good.out);
  t.match(good.out, /reload ok: generation 2 is serving/);
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('workers: 1', 'workers: none'));
  const bad = await run('ExecReload');
  t.equal(bad.code, 5, `a failed reload is a failed ExecReload: ${bad.out}`);
  t.equal((await d.status()).generation, 2, 'and nothing changed');
});
