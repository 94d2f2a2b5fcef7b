/**
 * @module What the hand-off does not move, or cannot: a receiver that dies in the middle (the sender serves the
 * connection again, request included), `drain.handoff: off` (nginx's behaviour: the idle connection is closed with
 * a FIN, a WebSocket stays with its old worker), and TLS connections (closed when idle, as before).
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { alive, Daemon, proxyAll, ROOT, sleep, waitFor } from '../helpers/daemon.js';
import { makeCerts } from '../helpers/certs.js';
import { upstream } from '../helpers/http.js';
import { KeepAlive } from '../helpers/keepalive.js';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';

// Each reload or upgrade here starts worker processes: on a loaded machine a file may need more than tap's 120 s.
t.setTimeout(300_000);

const body = (text: string, listeners = '  - listen: 127.0.0.1:0') => `
listeners:
${listeners}
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

/** Idle connections must outlive a slow reload on a loaded machine: only the drain may close them. */
const LONG_KEEPALIVE = 'limits: { keepalive_timeout: 120s }';

async function metric(d: Daemon, name: string, labels: Record<string, string>): Promise<number> {
  const res = await fetch(`http://${await d.adminAddress()}/metrics`);
  return sampleValue(parseExposition(await res.text()).samples, name, labels) ?? 0;
}

t.test('a receiver that dies before answering: the sender serves the connection again, the request sent meanwhile included', async (t) => {
  const d = new Daemon(t);
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/handoff-receiver-dies.mjs')).href;
  await d.start({ body: body('one'), top: LONG_KEEPALIVE, env: { NODE_OPTIONS: `--import=${hook}`, BATON_TEST_HANDOFF_DIR: d.dir } });
  const port = await d.port();
  const c = await KeepAlive.open(t, port);
  t.equal((await c.get('/before')).body, 'one');
  const [sender] = d.workerPids();
  d.writeConfig({ body: body('two'), top: LONG_KEEPALIVE });
  d.signal('SIGHUP');
  const receiver = await waitFor('a worker of generation 2 holding the connection', 60_000, () => {
    try {
      return Number(fs.readFileSync(path.join(d.dir, 'received'), 'utf8'));
    } catch {
      return undefined;
    }
  });
  // The offer is pending: the sender holds its copy with reads stopped, the receiver has not read a byte. This
  // request waits in the kernel, for whoever reads the connection next.
  c.send('GET /during HTTP/1.1\r\nHost: test\r\n\r\n');
  fs.writeFileSync(path.join(d.dir, 'go'), '');
  await waitFor('the receiver dead', 30_000, () => (alive(receiver) ? undefined : true));
  const a = await c.next();
  t.equal(a.status, 200);
  t.equal(a.body, 'one', 'answered by the sender, which kept the connection');
  t.equal(a.headers.connection, 'close', 'with Connection: close, as any response of a draining worker');
  await waitFor('the close', 30_000, () => (c.closed ? true : undefined));
  t.equal(c.reset, false, 'a clean close');
  await waitFor('the sender gone', 60_000, () => (alive(sender!) ? undefined : true));
  await waitFor('the failure counted', 30_000, async () => ((await metric(d, 'baton_handoff_failures_total', { kind: 'http1', reason: 'receiver_gone' })) === 1 ? true : undefined));
  t.pass('baton_handoff_failures_total{reason="receiver_gone"} is 1');
});

t.test('drain.handoff: off keeps today\'s behaviour: an idle connection is closed with a FIN, a WebSocket stays with its worker', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up'));
  const { wsEchoUpgrade, wsConnect } = (await import(pathToFileURL(path.join(ROOT, 'scripts/lib/websocket.mjs')).href)) as WebSocketModule;
  up.server.on('upgrade', wsEchoUpgrade);
  const top = `drain: { handoff: off }\n${LONG_KEEPALIVE}`;
  const d = await new Daemon(t).start({ body: proxyAll(up.url), top });
  const port = await d.port();
  const c = await KeepAlive.open(t, port);
  t.equal((await c.get('/')).body, 'up');
  const ws = await wsConnect(port, '/ws');
  t.teardown(() => ws.socket.destroy());
  const echo = (text: string) => new Promise<string>((resolve) => { ws.once('message', resolve); ws.send(text); });
  t.equal(await echo('before'), 'before');
  const [old] = d.workerPids();
  d.signal('SIGHUP');
  await waitFor('the idle connection closed by the draining worker', 30_000, () => (c.closed ? true : undefined));
  t.equal(c.reset, false, 'with a FIN, after the quiet period');
  // A lower bound: the old worker is still there, kept by the tunnel (until it closes, or shutdown_timeout).
  await sleep(1500);
  t.ok(alive(old!), 'the old worker stays while the WebSocket is open');
  t.equal(await echo('during'), 'during', 'and still relays it');
  await ws.close(5000);
  await waitFor('the old worker gone once the tunnel closed', 30_000, () => (alive(old!) ? undefined : true));
  await waitFor('the last counts pushed', 30_000, async () => ((await metric(d, 'baton_websocket_tunnels_total', { route: '*/', upstream: 'app', status_class: '1xx' })) === 1 ? true : undefined));
  t.equal(await metric(d, 'baton_handoffs_total', { kind: 'http1' }), 0, 'nothing handed over');
  t.equal(await metric(d, 'baton_handoffs_total', { kind: 'websocket' }), 0);
});

t.test('an idle TLS connection is not handed over (Node cannot move TLS state): it is closed with a FIN, as before', async (t) => {
  const d = new Daemon(t);
  const { ca } = makeCerts(d.dir);
  await d.start({ body: body('one', '  - listen: 127.0.0.1:0\n    tls: { cert: site.crt, key: site.key }'), top: LONG_KEEPALIVE });
  const port = await d.port();
  const s = tls.connect({ port, host: '127.0.0.1', servername: 'site.test', ca: fs.readFileSync(ca) });
  t.teardown(() => s.destroy());
  let text = '';
  let closed = false;
  s.on('data', (b: Buffer) => { text += b.toString('latin1'); });
  s.on('close', () => { closed = true; });
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('secureConnect', () => r()));
  s.write('GET / HTTP/1.1\r\nHost: site.test\r\n\r\n');
  await waitFor('the answer', 30_000, () => (text.endsWith('\r\n\r\none') ? true : undefined));
  const [old] = d.workerPids();
  d.signal('SIGHUP');
  await waitFor('the idle TLS connection closed by the draining worker', 30_000, () => (closed ? true : undefined));
  // A worker pushes its last counts before it exits.
  await waitFor('the old worker gone', 30_000, () => (alive(old!) ? undefined : true));
  t.equal(await metric(d, 'baton_handoffs_total', { kind: 'http1' }), 0, 'never offered');
  t.equal(await metric(d, 'baton_handoff_failures_total', { kind: 'http1', reason: 'no_receiver' }), 0, 'nor counted as a failure');
});

interface WsClient {
  readonly socket: import('node:net').Socket;
  send(text: string): boolean;
  once(event: 'message', fn: (text: string) => void): void;
  close(ms?: number): Promise<boolean>;
}

interface WebSocketModule {
  wsEchoUpgrade(req: unknown, socket: unknown, head: Buffer): void;
  wsConnect(port: number, path: string, opts?: { host?: string; timeout?: number }): Promise<WsClient>;
}
