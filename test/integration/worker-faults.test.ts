/**
 * A bug in one request (an uncaught exception, an unhandled rejection) against the real daemon: the worker's state
 * may be corrupt, so it finishes what it has in flight, exits, and the master replaces it at once.
 */
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { alive, Daemon, ROOT, waitFor, proxyAll } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';

interface Outcome { ok: boolean; error?: string }

/** One request on a fresh connection; never rejects. */
function attempt(port: number, p: string, headers: http.OutgoingHttpHeaders = {}, timeout = 30_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, headers, timeout }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ...(res.statusCode === 200 ? {} : { error: `status ${res.statusCode}` }) }));
      res.on('error', (e: Error & { code?: string }) => resolve({ ok: false, error: e.code ?? e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: Error & { code?: string }) => resolve({ ok: false, error: e.code ?? e.message }));
  });
}

t.test('after an uncaught exception a worker finishes its requests in flight, exits, and is replaced at once', async (t) => {
  let slowArrived = 0;
  const up = await upstream(t, (req, res) => {
    if (req.url === '/slow') slowArrived++;
    setTimeout(() => res.end('ok'), req.url === '/slow' ? 700 : 0);
  });
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/fault.mjs')).href;
  const d = await new Daemon(t).start({ env: { NODE_OPTIONS: `--import=${hook}` }, body: proxyAll(up.url) });
  const port = await d.port();
  const [worker] = d.workerPids();
  const slow = Array.from({ length: 6 }, () => attempt(port, '/slow'));
  await waitFor('the six slow requests at the upstream', 30_000, () => (slowArrived === 6 ? true : undefined));
  const fault = await attempt(port, '/fault/async-throw', { 'x-fault': 'async-throw' });
  t.ok(fault.ok, 'the request whose processing threw later was still answered');
  const logged = await d.waitForLine('the exception logged by the worker', (l) => typeof l.msg === 'string' && l.msg.startsWith('uncaught exception: the worker stops accepting, drains and exits') && l.pid === worker, 30_000);
  t.match(logged.err, { message: 'injected asynchronous fault' }, 'with the error');
  t.same((await Promise.all(slow)).map((o) => o.ok), [true, true, true, true, true, true], 'the requests in flight all completed');
  await d.waitForLine('the master replacing it', (l) => l.role === 'master' && typeof l.msg === 'string' && l.msg.startsWith('worker retires (uncaught exception: injected asynchronous fault)'), 30_000);
  await waitFor('the worker gone', 30_000, () => (alive(worker!) ? undefined : true));
  const [replacement] = await waitFor('a replacement worker', 30_000, () => { const w = d.workerPids(); return w.length === 1 && w[0] !== worker ? w : undefined; });
  t.not(replacement, worker, 'a new worker process took its place');
  t.equal((await attempt(port, '/after')).ok, true, 'and serves');
  // An unhandled rejection is the same kind of bug (Node's own default turns it into an uncaught exception).
  await attempt(port, '/fault/async-reject', { 'x-fault': 'async-reject' });
  await d.waitForLine('the rejection logged', (l) => typeof l.msg === 'string' && l.msg.startsWith('unhandled rejection: the worker stops accepting') && l.pid === replacement, 30_000);
  await waitFor('that worker replaced too', 30_000, () => { const w = d.workerPids(); return w.length === 1 && w[0] !== replacement ? true : undefined; });
  t.equal((await attempt(port, '/after-2')).ok, true);
});
