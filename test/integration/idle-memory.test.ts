/**
 * An idle worker gives back the memory its last busy spell grew (lib/worker/idle-memory.ts): the real worker, with
 * the flags the master starts it with, runs its one collection about 10 s after its last request, logs it, and
 * serves on.
 */
import t from 'tap';
import { Daemon, proxyAll } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';

t.test('a worker quiet for 10 s after serving requests runs one memory-reducing collection, logs it and serves on', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up\n'));
  const d = new Daemon(t);
  await d.start({ body: proxyAll(`http://127.0.0.1:${up.port}`), workers: 1 });
  const port = await d.port();
  const statuses = new Set<number>();
  for (let i = 0; i < 200; i++) statuses.add((await request(port, `/${i}`)).status);
  t.same([...statuses], [200], 'a busy spell: 200 requests served');
  const line = await d.waitForLine('idle: memory given back', (l) => l.msg === 'idle: memory given back', 60_000);
  t.type(line.rss_before, 'number', 'RSS before');
  t.type(line.rss_after, 'number', 'RSS after');
  t.type(line.ms, 'number', 'how long it took');
  t.equal(d.lines().filter((l) => l.msg === 'idle: memory given back').length, 1, 'once for this idle spell');
  t.equal((await request(port, '/after')).body, 'up\n', 'the worker serves on');
});
