/**
 * Reloads at the edges: what a reload leaves open in the master (descriptors), and replies to reloads that a
 * WINCH interrupts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { Daemon, ROOT, waitFor } from '../helpers/daemon.js';

const body = (text: string) => `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

/** The master's open descriptors, by what they point to. */
function masterFds(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '(gone)';
    }
  });
}

t.test('ten reloads that change only the log level leave the master\'s descriptors flat, and the master never opens the access log', async (t) => {
  const d = await new Daemon(t).start({ body: body('one'), workers: 1 });
  const admin = await d.adminAddress();
  const oneGeneration = () => waitFor('one generation left', 30_000, async () => {
    const s = await d.status();
    return (s.generations as unknown[]).length === 1 && (s.workers as { state: string }[]).every((w) => w.state === 'ready') ? true : undefined;
  });
  await oneGeneration();
  const before = masterFds(d.masterPid);
  t.notOk(before.some((f) => f.endsWith('/access.log')), 'no access.log among the master\'s descriptors');
  for (let i = 0; i < 10; i++) {
    fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace(/level: \w+/, `level: ${i % 2 ? 'debug' : 'info'}`));
    const res = await fetch(`http://${admin}/reload`, { method: 'POST' });
    t.equal(res.status, 200, `reload ${i + 1}`, { diagnostic: false });
    await oneGeneration();
  }
  const after = masterFds(d.masterPid);
  // Sockets come and go with this test's own admin connections (keep-alive); files and pipes must not grow.
  const files = (list: string[]) => list.filter((f) => !f.startsWith('socket:'));
  t.ok(files(after).length <= files(before).length, `files and pipes: ${files(before).length} before, ${files(after).length} after 10 reloads (${files(after).filter((f) => !before.includes(f)).join(', ')})`);
  t.notOk(after.some((f) => f.endsWith('/access.log')), 'still no access.log');
  t.equal(after.filter((f) => f.endsWith('/error.log')).length, 1, 'one error.log, however many reloads');
});

t.test('reload, reload, WINCH: both POST /reload requests are answered', async (t) => {
  // Workers of every generation take 1.5 s to start, so the WINCH lands while the first reload is still starting.
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/slow-worker.mjs')).href;
  const d = await new Daemon(t).start({ body: body('one'), env: { NODE_OPTIONS: `--import=${hook}` } });
  const admin = await d.adminAddress();
  await waitFor('a ready worker', 30_000, async () => ((await d.status()).generation === 1 ? true : undefined));
  const post = () => fetch(`http://${admin}/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: await r.json() as { ok: boolean; errors?: string[] } }));
  const first = post();
  await d.waitForLine('the first reload starting its generation', (l) => l.msg === 'configuration valid, starting a new generation');
  const second = post();
  await d.waitForLine('the second reload queued', (l) => l.msg === 'reload queued behind the one in progress');
  d.signal('SIGWINCH');
  const answers = await Promise.race([
    Promise.all([first, second]),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a POST /reload was never answered')), 60_000)),
  ]);
  t.same(answers.map((a) => a.body), [{ ok: false, errors: ['interrupted by WINCH'] }, { ok: false, errors: ['interrupted by WINCH'] }]);
  t.same(answers.map((a) => a.status), [409, 409]);
});
