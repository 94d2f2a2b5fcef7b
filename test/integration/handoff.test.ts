/**
 * @module Idle HTTP/1.1 keep-alive connections handed over to the new generation (drain.handoff: on, the default),
 * on the real daemon with raw clients: one TCP connection served by three generations (reload, then upgrade);
 * clients that send their next request at the moment of hand-off.
 */
import fs from 'node:fs';
import t from 'tap';
import { alive, Daemon, proxyAll, sleep, waitFor } from '../helpers/daemon.js';
import { upstream } from '../helpers/http.js';
import { KeepAlive, type Answer } from '../helpers/keepalive.js';
import { parseExposition, sampleValue } from '../helpers/metrics-parse.js';

// Each reload or upgrade here starts worker processes: on a loaded machine a file may need more than tap's 120 s.
t.setTimeout(300_000);

const body = (text: string) => `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

/** Idle connections must outlive a slow reload or upgrade on a loaded machine: only the drain may close them. */
const LONG_KEEPALIVE = 'limits: { keepalive_timeout: 120s }';

/** The generation /status reports, once its workers are all that serve (the old ones have exited). */
async function waitForGeneration(d: Daemon, generation: number, oldWorkers: number[], pid?: number): Promise<void> {
  await waitFor(`generation ${generation} serving`, 60_000, async () => ((await d.status(pid).catch(() => null))?.generation === generation ? true : undefined));
  await waitFor(`the workers of the previous generation gone (${oldWorkers.join(' ')})`, 60_000, () => (oldWorkers.some(alive) ? undefined : true));
}

async function metric(d: Daemon, name: string, labels: Record<string, string>, pid?: number): Promise<number> {
  const res = await fetch(`http://${await d.adminAddress(pid)}/metrics`);
  return sampleValue(parseExposition(await res.text()).samples, name, labels) ?? 0;
}

/** The request-id prefix names the worker process that answered (lib/worker/headers.ts). */
const worker = (a: Answer) => a.headers['x-request-id']!.split('-')[0];

t.test('one keep-alive connection is served by generation 1, then 2 after a reload, then 3 after an upgrade, and never closed', async (t) => {
  const d = await new Daemon(t).start({ body: body('one'), top: LONG_KEEPALIVE });
  const port = await d.port();
  const c = await KeepAlive.open(t, port);
  const a1 = await c.get('/a');
  t.equal(a1.body, 'one');

  const gen1 = d.workerPids();
  d.writeConfig({ body: body('two'), top: LONG_KEEPALIVE });
  d.signal('SIGHUP');
  await waitForGeneration(d, 2, gen1);
  t.equal(c.closed, false, 'the idle connection outlived the worker that accepted it');
  const a2 = await c.get('/b');
  t.equal(a2.body, 'two', 'the next request on it is served by generation 2');
  t.equal(a2.headers.connection, 'keep-alive');

  const oldMaster = d.masterPid;
  const gen2 = d.workerPids(oldMaster);
  d.writeConfig({ body: body('three'), top: LONG_KEEPALIVE });
  d.signal('SIGUSR2', oldMaster);
  const newMaster = await d.newMasterPid(oldMaster);
  await waitFor('the new master serving', 60_000, async () => ((await d.status(newMaster).catch(() => null))?.pid === newMaster ? true : undefined));
  d.signal('SIGWINCH', oldMaster);
  await waitFor('the old master\'s workers gone', 60_000, () => (gen2.some(alive) ? undefined : true));
  t.equal(c.closed, false, 'still the same connection after WINCH');
  const a3 = await c.get('/c');
  t.equal(a3.body, 'three', 'served by the new master\'s generation 3');
  d.signal('SIGQUIT', oldMaster);
  await waitFor('the old master gone', 60_000, () => (alive(oldMaster) ? undefined : true));
  const a4 = await c.get('/d');
  t.equal(a4.body, 'three');
  t.equal(c.closed, false);

  t.equal(new Set([worker(a1), worker(a2), worker(a3)]).size, 3, 'three worker processes answered on one TCP connection');
  t.equal(worker(a3), worker(a4));
  const access = await waitFor('four access-log lines', 30_000, () => {
    const lines = d.lines(d.accessLog).filter((l) => /^\/[abcd]$/.test(String(l.path)));
    return lines.length === 4 ? lines : undefined;
  });
  t.same(access.map((l) => [l.path, l.request_id]), [a1, a2, a3, a4].map((a, i) => [`/${'abcd'[i]}`, a.headers['x-request-id']]), 'each line written by the worker that answered');
  // Workers push their counts every second.
  await waitFor('the new master to count the connection it received', 30_000, async () => ((await metric(d, 'baton_handoffs_received_total', { kind: 'http1' }, newMaster)) >= 1 ? true : undefined));
  t.pass('the new master counted the connection it received');
});

t.test('clients that send their next request at the moment of hand-off get every answer once and in order', async (t) => {
  const up = await upstream(t, (req, res) => {
    req.resume();
    const text = req.url ?? '';
    res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  const d = await new Daemon(t).start({ body: proxyAll(up.url), workers: 2 });
  const port = await d.port();
  const CLIENTS = 16;
  const MAX_REQUESTS = 5000;
  let running = true;
  const problems: string[] = [];
  let answered = 0;
  let reconnects = 0;
  const clients = Array.from({ length: CLIENTS }, async (_, id) => {
    let c = await KeepAlive.open(t, port);
    for (let seq = 1; running && seq <= MAX_REQUESTS; seq++) {
      const path = `/c${id}/${seq}`;
      let a: Answer;
      try {
        a = await c.get(path);
      } catch (err) {
        problems.push(`${path}: ${(err as Error).message}`);
        return;
      }
      answered++;
      if (a.status !== 200 || a.body !== path) problems.push(`${path}: got ${a.status} ${JSON.stringify(a.body)}`);
      if (a.headers.connection === 'close') {
        // A response in flight when the drain began: the connection ends after it, cleanly.
        await waitFor('the close announced by Connection: close', 30_000, () => (c.closed ? true : undefined));
        c = await KeepAlive.open(t, port);
        reconnects++;
        continue;
      }
      // 0-3 ms, often none: the next request lands before, during or after the hand-off.
      const gap = Math.random() * 4;
      if (gap >= 1) await sleep(gap);
      else await new Promise((r) => setImmediate(r));
    }
    c.socket.destroy();
  });
  for (let i = 0; i < 3; i++) {
    await waitFor('answers flowing', 30_000, () => (answered > 50 * (i + 1) ? true : undefined));
    const before = d.workerPids();
    const generation = Number((await d.status()).generation);
    d.signal('SIGHUP');
    await waitForGeneration(d, generation + 1, before);
  }
  running = false;
  await Promise.all(clients);
  t.same(problems, [], 'no request lost, failed, duplicated or answered out of order');
  const moved = await metric(d, 'baton_handoffs_total', { kind: 'http1' });
  t.ok(moved > 0, `hand-offs happened (${moved} connections moved, ${reconnects} closed after a Connection: close answer, ${answered} answers)`);
});
