/**
 * Binary upgrades at the edges: the admin listener answers from one master at a time, and a new master that cannot
 * start says why in the configured error log and in the old master's /status.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { alive, copyPackage, Daemon, ROOT, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hello\\n" }
`;

interface Answer { code: number; pid: number; upgrade: { oldMaster: number; newMaster: number | null } | null }

/** GET /status on a new connection (so that each answer says which master accepted it). */
function status(address: string): Promise<Answer | null> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/status', agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        try {
          const s = JSON.parse(text) as Answer;
          resolve({ code: res.statusCode ?? 0, pid: s.pid, upgrade: s.upgrade });
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const newMasterIn = (d: Daemon, old: number) => () => {
  try {
    const p = d.masterPid;
    return p !== old ? p : undefined;
  } catch {
    return undefined;
  }
};

t.test('/status during an upgrade answers from the old master, with both pids, until the new one is ready; then only from the new one', async (t) => {
  // The new master's workers take 1.5 s to start: the window in which it must not answer yet.
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/slow-worker.mjs')).href;
  const d = await new Daemon(t).start({ body: BODY, env: { NODE_OPTIONS: `--import=${hook}` } });
  const address = await d.adminAddress();
  const old = d.masterPid;
  await waitFor('the old master serving', 30_000, async () => ((await status(address))?.code === 200 ? true : undefined));
  d.signal('SIGUSR2', old);
  const answers: Answer[] = [];
  await waitFor('ten answers from the new master', 60_000, async () => {
    const a = await status(address);
    if (a) answers.push(a);
    return answers.filter((x) => x.pid !== old).length >= 10 ? true : undefined;
  });
  const firstNew = answers.findIndex((a) => a.pid !== old);
  const fresh = answers[firstNew]!.pid;
  t.ok(firstNew > 0, `the old master answered first (${firstNew} answers)`);
  t.same(answers.slice(firstNew).filter((a) => a.pid === old), [], 'never the old master again once the new one answered');
  t.ok(answers.slice(0, firstNew).some((a) => a.upgrade?.oldMaster === old && a.upgrade.newMaster === fresh), 'the old master reported the upgrade in progress with both pids');
  t.equal(newMasterIn(d, old)(), fresh, 'the new master answering is the one in the pid file');
  t.match(answers.at(-1), { code: 200, upgrade: { oldMaster: old, newMaster: fresh } });
  d.signal('SIGQUIT', old);
  await waitFor('the old master gone', 30_000, () => (alive(old) ? undefined : true));
});

async function failedUpgrade(t: Test, breakIt: (d: Daemon, bin: string) => void) {
  const d = new Daemon(t);
  const bin = copyPackage(fs.mkdtempSync(path.join(d.dir, 'pkg-')));
  await d.start({ body: BODY, bin });
  const port = await d.port();
  const old = d.masterPid;
  const address = await d.adminAddress();
  breakIt(d, bin);
  d.signal('SIGUSR2', old);
  const line = await d.waitForLine('the old master logging why', (l) => l.pid === old && typeof l.msg === 'string' && l.msg.startsWith('the new master cannot start: '), 30_000);
  await waitFor('the pid file back', 30_000, () => (d.pidFromFile() === old && !fs.existsSync(`${d.pidFile}.oldbin`) ? true : undefined));
  const s = await waitFor('lastUpgradeFailure in /status', 30_000, async () => {
    const res = await fetch(`http://${address}/status`);
    const body = await res.json() as { pid: number; lastUpgradeFailure: { reason: string; at: string } | null };
    return body.lastUpgradeFailure ? body : undefined;
  });
  t.equal(s.pid, old, 'the old master answers /status');
  t.ok(Date.parse(s.lastUpgradeFailure!.at) > 0, `with when: ${s.lastUpgradeFailure!.at}`);
  t.equal((await request(port, '/')).status, 200, 'and keeps serving');
  return { line: String(line.msg), reason: s.lastUpgradeFailure!.reason, d };
}

t.test('a new master whose configuration is invalid: the errors go to the error log and to /status', async (t) => {
  const { line, reason } = await failedUpgrade(t, (d) => fs.appendFileSync(d.configFile, '\nbogus_key: 1\n'));
  t.match(line, /invalid configuration:\n.*baton\.yaml:\d+:1: .*bogus_key/);
  t.match(reason, /bogus_key/);
});

t.test('a new master that cannot write its pid file: the reason, with path and errno, goes to the error log and to /status', async (t) => {
  const { line, reason, d } = await failedUpgrade(t, (d) => {
    fs.writeFileSync(path.join(d.dir, 'run'), 'a file where the pid directory should be\n');
    fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('pid_file: baton.pid', 'pid_file: run/baton.pid'));
  });
  t.match(line, /cannot write the pid file .*run\/baton\.pid: (EEXIST|ENOTDIR)/);
  t.match(reason, /cannot write the pid file/);
  t.ok(d.lines().some((l) => l.pid !== undefined && typeof l.msg === 'string' && l.msg.startsWith('cannot start: cannot write the pid file') && l.role === 'master'), 'the new master wrote it in its error log too');
});

t.test('a new master whose code cannot load: the error and its stack go to the old master\'s error log and /status', async (t) => {
  const { line, reason } = await failedUpgrade(t, (_d, bin) => fs.writeFileSync(path.resolve(path.dirname(bin), '../dist/lib/cli/main.js'), 'this is not javascript (\n'));
  t.match(line, /cannot load its code: SyntaxError/);
  t.match(reason, /SyntaxError[^\n]*\n\s+at /, 'with the stack');
});
