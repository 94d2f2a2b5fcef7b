/**
 * @module Drain accounting on the real daemon: requests that Node hands over through events other than 'request'
 * ('checkContinue' for `Expect: 100-continue`) hold their connection through a reload like any other request.
 */
import net from 'node:net';
import t from 'tap';
import { Daemon, proxyAll, sleep, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';

t.test('a request with Expect: 100-continue in flight during a reload gets its whole response, then the connection closes', async (t) => {
  let release: (() => void) | null = null;
  const up = await upstream(t, (req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { release = () => res.end(`got ${body}`); });
  });
  const d = await new Daemon(t).start({ body: proxyAll(up.url) });
  const port = await d.port();
  const c = net.connect(port, '127.0.0.1');
  t.teardown(() => c.destroy());
  let text = '';
  let closed = false;
  c.on('data', (b) => { text += b.toString('latin1'); });
  c.on('close', () => { closed = true; });
  c.on('error', () => {});
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  await waitFor('100 Continue', 30_000, () => (text.includes('100 Continue') ? true : undefined));
  c.write('hello');
  await waitFor('the upstream to have the whole body', 30_000, () => release ?? undefined);
  const oldWorker = d.workerPids()[0];
  d.signal('SIGHUP');
  await d.waitForLine('the old worker draining', (l) => l.msg === 'draining' && l.pid === oldWorker, 30_000);
  // A lower bound: well past the drain's quiet period (1 s), after which an idle connection would be closed.
  await sleep(2500);
  t.equal(closed, false, 'the connection is still open while its response is pending');
  release!();
  await waitFor('the response and the close', 30_000, () => (closed ? true : undefined));
  t.match(text, /HTTP\/1\.1 200 OK\r\n(?:[^\r\n]+\r\n)*[Cc]onnection: close\r\n(?:[^\r\n]+\r\n)*\r\ngot hello$/, 'the whole response, with Connection: close');
});
