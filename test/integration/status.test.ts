/**
 * /status and /metrics tell the truth: 503 while nothing serves, each upstream target's health as the workers see
 * it (passive marks and active checks), each process's memory, heap, event loop and descriptors.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { Daemon, freePort, ROOT, waitFor } from '../helpers/daemon.js';
import { request, upstream } from '../helpers/http.js';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';

interface Status {
  pid: number;
  serving: boolean;
  workers: { pid: number; state: string; rss: number | null }[];
  upstreams: { name: string; targets: { target: string; state: string; since: string; reason: string | null }[] }[];
}

async function status(d: Daemon): Promise<{ code: number; body: Status }> {
  const res = await fetch(`http://${await d.adminAddress()}/status`);
  return { code: res.status, body: await res.json() as Status };
}

t.test('/status answers 503 while no worker is ready (starting, or drained by WINCH) and 200 while one is', async (t) => {
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/slow-worker.mjs')).href;
  const d = await new Daemon(t).start({ body: `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`, env: { NODE_OPTIONS: `--import=${hook}` }, expectFailure: true });
  const starting = await waitFor('an answer while the worker starts', 30_000, () => status(d).catch(() => undefined));
  t.equal(starting.code, 503, 'starting: 503');
  t.equal(starting.body.serving, false);
  await waitFor('200 once the worker is ready', 30_000, async () => ((await status(d)).code === 200 ? true : undefined));
  t.equal((await status(d)).body.serving, true);
  d.signal('SIGWINCH');
  await waitFor('503 once WINCH has drained it', 30_000, async () => ((await status(d)).code === 503 ? true : undefined));
  t.pass('503 after WINCH');
});

t.test('/status and /metrics show each target\'s health (passive and active), each worker\'s RSS and per-process metrics', async (t) => {
  const live = await upstream(t, (_req, res) => res.end('ok\n'));
  const sick = await upstream(t, (req, res) => { res.statusCode = req.url === '/health' ? 500 : 200; res.end(); });
  const dead = await freePort();
  const d = await new Daemon(t).start({ workers: 1, body: `
listeners:
  - listen: 127.0.0.1:0
upstreams:
  app:
    targets: [{ url: "${live.url}" }, { url: "http://127.0.0.1:${dead}" }]
    max_fails: 1
    fail_timeout: 5m
  checked:
    targets: [{ url: "${sick.url}" }]
    health_check: { path: /health, interval: 1s, timeout: 1s }
routes:
  - path: /checked/
    upstream: checked
  - path: /
    upstream: app
` });
  const port = await d.port();
  // Round robin reaches the dead target within two requests; its connect failure takes it out (and fails over).
  for (let i = 0; i < 4; i++) t.equal((await request(port, `/x${i}`)).status, 200, `request ${i} answered by the live target`);
  const s = await waitFor('both verdicts in /status', 30_000, async () => {
    const { body } = await status(d);
    const app = body.upstreams.find((u) => u.name === 'app');
    const checked = body.upstreams.find((u) => u.name === 'checked');
    return app?.targets.some((x) => x.state === 'down') && checked?.targets[0]?.state === 'down' ? body : undefined;
  });
  const app = s.upstreams.find((u) => u.name === 'app')!;
  t.match(app.targets, [
    { target: `127.0.0.1:${live.port}`, state: 'up', reason: null },
    { target: `127.0.0.1:${dead}`, state: 'down', reason: '1 failure(s) within fail_timeout' },
  ]);
  t.ok(Date.parse(app.targets[1]!.since) > Date.parse(app.targets[0]!.since), 'down since its failure, up since the start');
  t.match(s.upstreams.find((u) => u.name === 'checked')!.targets[0], { state: 'down', reason: /^1 health check\(s\) failed: status 500$/ });
  t.ok(s.workers.length === 1 && typeof s.workers[0]!.rss === 'number' && s.workers[0]!.rss > 10_000_000, `the worker's RSS in bytes: ${s.workers[0]!.rss}`);

  const text = await (await fetch(`http://${await d.adminAddress()}/metrics`)).text();
  const { samples } = parseExposition(text);
  t.equal(sampleValue(samples, 'baton_upstream_target_up', { upstream: 'app', target: `127.0.0.1:${live.port}` }), 1);
  t.equal(sampleValue(samples, 'baton_upstream_target_up', { upstream: 'app', target: `127.0.0.1:${dead}` }), 0);
  t.equal(sampleValue(samples, 'baton_upstream_target_up', { upstream: 'checked', target: `127.0.0.1:${sick.port}` }), 0);
  const worker = { role: 'worker', pid: String(s.workers[0]!.pid) };
  const master = { role: 'master', pid: String(s.pid) };
  for (const name of ['baton_process_resident_memory_bytes', 'baton_process_heap_used_bytes', 'baton_process_open_fds']) {
    t.ok((sampleValue(samples, name, worker) ?? 0) > 0, `${name} of the worker`);
    t.ok((sampleValue(samples, name, master) ?? 0) > 0, `${name} of the master`);
  }
  const elu = sampleValue(samples, 'baton_process_event_loop_utilization', worker);
  t.ok(elu !== undefined && elu >= 0 && elu <= 1, `event-loop utilization of the worker: ${elu}`);
});
