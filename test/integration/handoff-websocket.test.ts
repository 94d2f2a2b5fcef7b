/**
 * @module WebSocket tunnels handed over with both their sockets (drain.handoff: on, cleartext client and upstream):
 * one echo session across a reload and an upgrade, with no gap, no reordering and no reconnect; the old workers
 * leave at once instead of at shutdown_timeout; the tunnel is logged once, when it closes, by the worker that has
 * it then, with every byte written to the client by the three workers it went through.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { alive, Daemon, proxyAll, ROOT, sleep, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';

// Each reload or upgrade here starts worker processes: on a loaded machine a file may need more than tap's 120 s.
t.setTimeout(300_000);

interface WsClient {
  readonly socket: import('node:net').Socket;
  open: boolean;
  send(text: string): boolean;
  on(event: 'message', fn: (text: string) => void): void;
  on(event: 'close', fn: (info: { byServer: boolean }) => void): void;
  close(ms?: number): Promise<boolean>;
}

interface WebSocketModule {
  wsEchoUpgrade(req: unknown, socket: unknown, head: Buffer): void;
  wsConnect(port: number, path: string, opts?: { host?: string; timeout?: number }): Promise<WsClient>;
}

t.test('a WebSocket echo session goes on across a reload and an upgrade with no gap in its sequence', async (t) => {
  const up = await upstream(t, (_req, res) => res.end('up'));
  const { wsEchoUpgrade, wsConnect } = (await import(pathToFileURL(path.join(ROOT, 'scripts/lib/websocket.mjs')).href)) as WebSocketModule;
  up.server.on('upgrade', wsEchoUpgrade);
  // A tunnel left with its old worker would keep it until shutdown_timeout (120 s): the test waits for half of that.
  const d = await new Daemon(t).start({ body: proxyAll(up.url), shutdownTimeout: '120s' });
  const port = await d.port();
  const ws = await wsConnect(port, '/ws?lane=1');
  t.teardown(() => ws.socket.destroy());
  const echoed: number[] = [];
  let sent = 0;
  let closedByServer = false;
  ws.on('message', (m) => echoed.push(Number(m)));
  ws.on('close', (info) => { closedByServer = info.byServer; });
  let sending = true;
  // Messages keep flowing while the tunnel moves: every 10 ms, some of them back to back.
  const sender = (async () => {
    while (sending && ws.open) {
      ws.send(String(++sent));
      if (sent % 7 === 0) ws.send(String(++sent));
      await sleep(10);
    }
  })();

  await waitFor('echoes flowing', 30_000, () => (echoed.length > 20 ? true : undefined));
  const gen1 = d.workerPids();
  d.signal('SIGHUP');
  await waitFor('generation 2 serving', 60_000, async () => ((await d.status().catch(() => null))?.generation === 2 ? true : undefined));
  // Half of shutdown_timeout (a bound, not a timing): only a moved tunnel lets the old worker go before it.
  await waitFor('the old worker gone', 60_000, () => (gen1.some(alive) ? undefined : true));
  const afterReload = echoed.length;
  await waitFor('echoes after the reload', 30_000, () => (echoed.length > afterReload + 20 ? true : undefined));

  const oldMaster = d.masterPid;
  const gen2 = d.workerPids(oldMaster);
  d.signal('SIGUSR2', oldMaster);
  const newMaster = await d.newMasterPid(oldMaster);
  await waitFor('the new master serving', 60_000, async () => ((await d.status(newMaster).catch(() => null))?.pid === newMaster ? true : undefined));
  d.signal('SIGWINCH', oldMaster);
  await waitFor('the old master\'s workers gone', 60_000, () => (gen2.some(alive) ? undefined : true));
  d.signal('SIGQUIT', oldMaster);
  await waitFor('the old master gone', 60_000, () => (alive(oldMaster) ? undefined : true));
  const afterUpgrade = echoed.length;
  await waitFor('echoes after the upgrade', 30_000, () => (echoed.length > afterUpgrade + 20 ? true : undefined));

  sending = false;
  await sender;
  await waitFor('every echo', 30_000, () => (echoed.length === sent ? true : undefined));
  t.equal(closedByServer, false, 'never closed by the proxy');
  t.same(echoed, Array.from({ length: sent }, (_, i) => i + 1), `all ${sent} messages echoed once, in order`);
  await ws.close(5000);
  // Read after the close: the echoed close frame counts too.
  const received = ws.socket.bytesRead;
  const line = await d.waitForLine('the tunnel\'s access-log line', (l) => String(l.path).startsWith('/ws'), 30_000, d.accessLog);
  t.equal(d.lines(d.accessLog).filter((l) => String(l.path).startsWith('/ws')).length, 1, 'one line for the tunnel');
  t.equal(line.status, 101);
  t.equal(line.upstream, 'app');
  t.equal(line.bytes, received, `bytes: everything written to the client, by the three workers (${String(line.bytes)} logged, ${received} received)`);
  // Workers push their counts every second.
  await waitFor('the new master to count the tunnel it received', 30_000, async () => {
    const res = await fetch(`http://${await d.adminAddress(newMaster)}/metrics`);
    return (sampleValue(parseExposition(await res.text()).samples, 'baton_handoffs_received_total', { kind: 'websocket' }) ?? 0) >= 1 ? true : undefined;
  });
  t.pass('the new master counted the tunnel it received');
});

t.test('a WebSocket tunnel to a unix-socket upstream moves too (a cleartext socket of another family) across a reload', async (t) => {
  const d = new Daemon(t);
  const { wsEchoUpgrade, wsConnect } = (await import(pathToFileURL(path.join(ROOT, 'scripts/lib/websocket.mjs')).href)) as WebSocketModule;
  const app = http.createServer((_req, res) => res.end('up'));
  app.on('upgrade', wsEchoUpgrade);
  const upSockets = new Set<import('node:net').Socket>();
  app.on('upgrade', (_req: unknown, s: import('node:net').Socket) => { upSockets.add(s); });
  await new Promise<void>((r) => app.listen(path.join(d.dir, 'ws.sock'), r));
  t.teardown(() => new Promise<void>((r) => { for (const s of upSockets) s.destroy(); app.close(() => r()); }));
  await d.start({ body: proxyAll('unix:ws.sock'), shutdownTimeout: '120s' });
  const ws = await wsConnect(await d.port(), '/ws?unix=1');
  t.teardown(() => ws.socket.destroy());
  const echoed: number[] = [];
  let closedByServer = false;
  ws.on('message', (m) => echoed.push(Number(m)));
  ws.on('close', (info) => { closedByServer = info.byServer; });
  let sent = 0;
  let sending = true;
  const sender = (async () => {
    while (sending && ws.open) {
      ws.send(String(++sent));
      await sleep(10);
    }
  })();
  await waitFor('echoes flowing', 30_000, () => (echoed.length > 20 ? true : undefined));
  const gen1 = d.workerPids();
  d.signal('SIGHUP');
  await waitFor('generation 2 serving', 60_000, async () => ((await d.status().catch(() => null))?.generation === 2 ? true : undefined));
  // Half of shutdown_timeout (a bound, not a timing): only a moved tunnel lets the old worker go before it.
  await waitFor('the old worker gone', 60_000, () => (gen1.some(alive) ? undefined : true));
  const afterReload = echoed.length;
  await waitFor('echoes after the reload', 30_000, () => (echoed.length > afterReload + 20 ? true : undefined));
  sending = false;
  await sender;
  await waitFor('every echo', 30_000, () => (echoed.length === sent ? true : undefined));
  t.equal(closedByServer, false, 'never closed by the proxy');
  t.same(echoed, Array.from({ length: sent }, (_, i) => i + 1), `all ${sent} messages echoed once, in order`);
  t.equal(upSockets.size, 1, 'one upstream connection for the whole session');
});
