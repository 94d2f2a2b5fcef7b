/**
 * @module A partial request line already inside a draining worker's parser: never handed over (the bytes would be
 * lost), never cut by the drain's idle close (the request would be lost): that worker answers it, then closes.
 */
import t from 'tap';
import { Daemon, sleep, waitFor } from '../helpers/daemon.js';
import { KeepAlive, unreadByServer } from '../helpers/keepalive.js';

// Each reload or upgrade here starts worker processes: on a loaded machine a file may need more than tap's 120 s.
t.setTimeout(300_000);

const body = (text: string) => `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

for (const handoff of ['on', 'off']) {
  t.test(`a partial request line already read by the draining worker is neither moved nor cut (handoff: ${handoff}): that worker answers it, with Connection: close`, async (t) => {
    // header_timeout and keepalive_timeout well above the test's length on a loaded machine: the partial request
    // must not meet its 408, nor Node's keep-alive timeout (still armed until a request's headers are complete).
    const top = `drain: { handoff: ${handoff} }\nlimits: { header_timeout: 120s, keepalive_timeout: 120s }`;
    const d = await new Daemon(t).start({ body: body('one'), top });
    const port = await d.port();
    const c = await KeepAlive.open(t, port);
    t.equal((await c.get('/first')).body, 'one');
    c.send('GET /sec');
    await waitFor('the worker to have read the partial request line', 30_000, () => (unreadByServer(port, c.localPort) === 0 ? true : undefined));
    const old = d.workerPids()[0]!;
    d.writeConfig({ body: body('two'), top });
    d.signal('SIGHUP');
    await d.waitForLine('the old worker draining', (l) => l.msg === 'draining' && l.pid === old, 60_000);
    // A lower bound: past the drain's quiet period (1 s), after which an idle connection would be closed.
    await sleep(1500);
    t.equal(c.closed, false, 'not closed with part of a request inside the parser');
    c.send('ond HTTP/1.1\r\nHost: test\r\n\r\n');
    const a = await c.next();
    t.equal(a.status, 200);
    t.equal(a.body, 'one', 'answered by the worker that had the bytes');
    t.equal(a.headers.connection, 'close');
    await waitFor('the close', 30_000, () => (c.closed ? true : undefined));
    t.equal(c.reset, false, 'a clean close, no reset');
    const line = await d.waitForLine('its access-log line', (l) => l.path === '/second', 30_000, d.accessLog);
    t.equal(line.status, 200, 'the request was parsed whole: never garbled');
  });
}
