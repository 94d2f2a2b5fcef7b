/**
 * What reloads leave open in the master: its descriptors stay flat (replies to reloads that a WINCH interrupts:
 * reload-winch.test.ts).
 */
import fs from 'node:fs';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';

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
  const oneGeneration = () => waitFor('one generation left', 60_000, async () => {
    const s = await d.status();
    return (s.generations as unknown[]).length === 1 && (s.workers as { state: string }[]).every((w) => w.state === 'ready') ? true : undefined;
  });
  await oneGeneration();
  const before = masterFds(d.masterPid);
  t.notOk(before.some((f) => f.endsWith('/access.log')), 'no access.log among the master\'s descriptors');
  // Each POST /reload answers once its generation serves; the previous ones drain meanwhile.
  for (let i = 0; i < 10; i++) {
    fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace(/level: \w+/, `level: ${i % 2 ? 'debug' : 'info'}`));
    const res = await fetch(`http://${admin}/reload`, { method: 'POST' });
    t.equal(res.status, 200, `reload ${i + 1}`, { diagnostic: false });
  }
  await oneGeneration();
  const after = masterFds(d.masterPid);
  // Sockets come and go with this test's own admin connections (keep-alive); files and pipes must not grow.
  const files = (list: string[]) => list.filter((f) => !f.startsWith('socket:'));
  t.ok(files(after).length <= files(before).length, `files and pipes: ${files(before).length} before, ${files(after).length} after 10 reloads (${files(after).filter((f) => !before.includes(f)).join(', ')})`);
  t.notOk(after.some((f) => f.endsWith('/access.log')), 'still no access.log');
  t.equal(after.filter((f) => f.endsWith('/error.log')).length, 1, 'one error.log, however many reloads');
});
