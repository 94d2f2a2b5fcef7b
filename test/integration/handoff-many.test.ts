/**
 * @module Many connections handed over at once: a WebSocket echo session keeps its sequence while a hundred idle
 * keep-alive connections and thirty other tunnels move with it, every one of them arrives (none stays, none fails,
 * none is closed), and the draining workers leave long before shutdown_timeout.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { alive, Daemon, proxyAll, ROOT, sleep, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { KeepAlive } from '../helpers/keepalive.js';

// Each reload starts worker processes, and 130 connections are opened: on a loaded machine a file may need more
// than tap's 120 s.
t.setTimeout(300_000);

interface WsClient {
  readonly socket: import('node:net').Socket;
  open: boolean;
  send(text: string): boolean;
  on(event: 'message', fn: (text: string) => void): void;
  on(event: 'close', fn: (info: { byServer: boolean }) => void): void;
}

interface WebSocketModule {
  wsEchoUpgrade(req: unknown, socket: unknown, head: Buffer): void;
  wsConnect(port: number, path: string, opts?: { host?: string; timeout?: number }): Promise<WsClient>;
}

const IDLE = 100;
const TUNNELS = 30;

t.test(`a WebSocket keeps echoing in sequence while ${IDLE} idle keep-alive connections and ${TUNNELS} other tunnels move with it across a reload`, async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up'));
  const { wsEchoUpgrade, wsConnect } = (await import(pathToFileURL(path.join(ROOT, 'scripts/lib/websocket.mjs')).href)) as WebSocketModule;
  up.server.on('upgrade', wsEchoUpgrade);
  // Two workers drain at once, each through its own channel to the master; shutdown_timeout far above the waits
  // below, so that only hand-offs let the old workers go in time.
  const d = await new Daemon(t).start({ body: proxyAll(up.url), shutdownTimeout: '200s', workers: 2, top: 'limits: { keepalive_timeout: 120s }' });
  const port = await d.port();

  const idle: KeepAlive[] = [];
  const first: number[] = [];
  for (let i = 0; i < IDLE; i++) {
    const c = await KeepAlive.open(t, port);
    first.push((await c.get('/')).status);
    idle.push(c);
  }
  t.same(first, idle.map(() => 200), `${IDLE} idle keep-alive connections, each served once`);
  const others: Array<{ ws: WsClient; echoes: string[] }> = [];
  for (let i = 0; i < TUNNELS; i++) {
    const ws = await wsConnect(port, `/ws?other=${i}`);
    t.teardown(() => ws.socket.destroy());
    const o = { ws, echoes: [] as string[] };
    ws.on('message', (m) => o.echoes.push(m));
    ws.send(`${i}:before`);
    others.push(o);
  }
  await waitFor('the other tunnels echoing', 60_000, () => (others.every((o) => o.echoes.length === 1) ? true : undefined));

  const lane = await wsConnect(port, '/ws?lane=1');
  t.teardown(() => lane.socket.destroy());
  const echoed: number[] = [];
  let closedByServer = false;
  lane.on('message', (m) => echoed.push(Number(m)));
  lane.on('close', (info) => { closedByServer = info.byServer; });
  let sent = 0;
  let sending = true;
  const sender = (async () => {
    while (sending && lane.open) {
      lane.send(String(++sent));
      await sleep(10);
    }
  })();
  await waitFor('echoes flowing', 30_000, () => (echoed.length > 20 ? true : undefined));

  const gen1 = d.workerPids();
  t.equal(gen1.length, 2);
  d.signal('SIGHUP');
  await waitFor('generation 2 serving', 60_000, async () => ((await d.status().catch(() => null))?.generation === 2 ? true : undefined));
  // A bound well under shutdown_timeout (not a timing): only connections that all moved let the old workers go.
  await waitFor('the old workers gone', 120_000, () => (gen1.some(alive) ? undefined : true));
  const afterReload = echoed.length;
  await waitFor('echoes after the reload', 30_000, () => (echoed.length > afterReload + 20 ? true : undefined));
  sending = false;
  await sender;
  await waitFor('every echo', 30_000, () => (echoed.length === sent ? true : undefined));
  t.equal(closedByServer, false, 'the lane was never closed by the proxy');
  t.same(echoed, Array.from({ length: sent }, (_, i) => i + 1), `all ${sent} messages of the lane echoed once, in order`);

  const answers = await Promise.all(idle.map((c) => c.get('/').then((a) => a.status, (e: Error) => e.message)));
  t.same(answers, idle.map(() => 200), 'every idle connection answers its next request');
  t.equal(idle.filter((c) => c.closed).length, 0, 'none was closed');
  for (const [i, o] of others.entries()) o.ws.send(`${i}:after`);
  await waitFor('the other tunnels echoing after the reload', 60_000, () => (others.every((o) => o.echoes.length === 2) ? true : undefined));
  t.same(others.map((o) => o.echoes), others.map((_, i) => [`${i}:before`, `${i}:after`]), 'every other tunnel echoes, in order');

  // What each old worker says when it leaves: everything handed over, nothing stayed.
  const drained = d.lines().filter((l) => l.msg === 'drained: connections handed over to serving workers' && gen1.includes(l.pid as number));
  t.equal(drained.length, 2, 'both old workers handed over');
  const moved = { http1: 0, websocket: 0 };
  for (const l of drained) {
    t.same(l.stayed, {}, `worker ${String(l.pid)}: nothing stayed`);
    const h = l.handed_over as { http1: number; websocket: number };
    moved.http1 += h.http1;
    moved.websocket += h.websocket;
  }
  t.same(moved, { http1: IDLE, websocket: TUNNELS + 1 }, 'every connection was handed over');
  // (Node 22 warns that http-proxy uses a deprecated API: not ours to count here.)
  const warnings = d.lines().filter((l) => (l.level === 'warn' || l.level === 'error') && /hand-?off|drain/i.test(String(l.msg)));
  t.same(warnings.map((l) => l.msg), [], 'no warning about the hand-off');
});
