// The Node clients of scripts/upgrade-drill, run as a child process with an IPC channel:
//   - slow:   ~N GET /slow always in flight; each must get 200 and the full 16 KiB body
//   - upload: M loops of POST /upload with a 256 KiB body; the echoed byte count must match
//   - ws:     K WebSocket connections to /ws, each sending a message every 200 ms and checking that the echoes come
//             back in sequence (a lane's messages are numbered: a gap or a reordering is a failure)
//   - idle:   L raw HTTP/1.1 keep-alive connections, each sending GET / and then staying idle a random while; every
//             close by the server is counted by what the connection was doing: idle (the close a hand-off avoids),
//             after a `Connection: close` answer (expected during a drain), or under a request (a failure)
// Every client counts the connections the server closed. Parent -> child messages: {cmd: 'ws-reconnect'} (open a
// new connection per lane, then close the old one gracefully once its echoes are in), {cmd: 'check'} (every idle
// connection sends one request now; reply 'checked' once all are answered), {cmd: 'stop'} (stop issuing, wait for
// in-flight work, reply with results).
//
//   node scripts/lib/drill-clients.mjs '{"port":18080,"slow":10,"uploaders":2,"ws":4,"idle":20}'
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { wsConnect } from './websocket.mjs';
import { slowBody } from './drill-upstream.mjs';
import { percentile, sleep } from './common.mjs';

const cfg = {
  host: '127.0.0.1',
  slow: 10,
  uploaders: 2,
  uploadBytes: 256 * 1024,
  uploadPauseMs: 25,
  ws: 4,
  wsIntervalMs: 200,
  idle: 0,
  idleMinMs: 200,
  idleMaxMs: 1500,
  echoTimeoutMs: 5000,
  requestTimeoutMs: 30_000,
  ...JSON.parse(process.argv[2] || '{}'),
};

let running = true;
const failures = []; // {t, client, kind, detail}
const MAX_FAILURE_RECORDS = 200;

function makeStats(name) {
  return { name, requests: 0, ok: 0, failures: 0, kinds: {}, lat: [], info: {} };
}
const stats = { slow: makeStats('slow GET'), upload: makeStats('POST upload'), ws: makeStats('websocket'), idle: makeStats('idle keep-alive') };

function info(s, key, n = 1) {
  s.info[key] = (s.info[key] || 0) + n;
}

/** Count a keep-alive socket's close by the server (its FIN: our side never ends first; destroy() emits no 'end'). */
const watched = new WeakSet();
function watchServerClose(s, socket) {
  if (watched.has(socket)) return;
  watched.add(socket);
  socket.once('end', () => {
    if (running) info(s, 'connections closed by the server');
  });
}

function fail(s, kind, detail = '') {
  s.failures++;
  s.kinds[kind] = (s.kinds[kind] || 0) + 1;
  if (failures.length < MAX_FAILURE_RECORDS) failures.push({ t: Date.now(), client: s.name, kind, detail });
}

// ---------------------------------------------------------------------------------------------------------
// plain HTTP loops

const expectedSlow = slowBody();
const uploadBody = crypto.randomBytes(cfg.uploadBytes);
const slowAgent = new http.Agent({ keepAlive: true, maxSockets: cfg.slow });
const uploadAgent = new http.Agent({ keepAlive: true, maxSockets: cfg.uploaders });

/** One request; resolves when it is accounted for (never rejects). */
function oneRequest(s, opts, body, check) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let settled = false;
    const settle = (kind, detail) => {
      if (settled) return;
      settled = true;
      s.requests++;
      if (kind) fail(s, kind, detail);
      else {
        s.ok++;
        s.lat.push(performance.now() - t0);
      }
      resolve(!kind);
    };
    const req = http.request({ host: cfg.host, port: cfg.port, timeout: cfg.requestTimeoutMs, ...opts }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => settle('response aborted', `status ${res.statusCode}, ${chunks.reduce((n, c) => n + c.length, 0)} bytes received`));
      res.on('error', (e) => settle('response error', e.code || e.message));
      res.on('end', () => {
        if (res.statusCode < 200 || res.statusCode >= 400) return settle(`status ${res.statusCode}`, Buffer.concat(chunks).toString('utf8').slice(0, 200));
        const why = check(Buffer.concat(chunks), res);
        settle(why ? 'bad body' : null, why);
      });
    });
    req.on('timeout', () => {
      req.destroy(new Error('timeout'));
      settle('unanswered (timeout)', `${cfg.requestTimeoutMs} ms`);
    });
    req.on('error', (e) => settle('socket error', `${e.code || e.message}${req.reusedSocket ? ' (on a reused keep-alive socket)' : ''}`));
    req.on('socket', (socket) => watchServerClose(s, socket));
    if (body) {
      // stream the body in 16 KiB writes, as a real client would
      for (let off = 0; off < body.length; off += 16384) req.write(body.subarray(off, off + 16384));
    }
    req.end();
  });
}

async function slowLoop() {
  while (running) {
    const ok = await oneRequest(stats.slow, { path: '/slow', agent: slowAgent }, null, (b) =>
      b.equals(expectedSlow) ? null : `body of ${b.length} bytes, expected ${expectedSlow.length} (content differs: ${b.length === expectedSlow.length})`,
    );
    if (!ok) await sleep(100);
  }
}

async function uploadLoop() {
  const want = `${cfg.uploadBytes}\n`;
  while (running) {
    const ok = await oneRequest(
      stats.upload,
      { path: '/upload', method: 'POST', agent: uploadAgent, headers: { 'content-type': 'application/octet-stream', 'content-length': cfg.uploadBytes } },
      uploadBody,
      (b) => (b.toString('utf8') === want ? null : `echoed ${JSON.stringify(b.toString('utf8').slice(0, 40))}, expected ${JSON.stringify(want)}`),
    );
    await sleep(ok ? cfg.uploadPauseMs : 100);
  }
}

// ---------------------------------------------------------------------------------------------------------
// WebSocket lanes

class Lane {
  constructor(id) {
    this.id = id;
    this.seq = 0;
    this.current = null; // {ws, pending: Map<seq, t>}
    this.retiring = new Set();
    this.timer = null;
    this.reconnecting = null;
  }

  async connect(kind) {
    try {
      const ws = await wsConnect(cfg.port, `/ws?lane=${this.id}`, { host: cfg.host, timeout: 10_000 });
      const conn = { ws, pending: new Map(), opened: Date.now() };
      ws.on('message', (m) => this.onMessage(conn, m));
      ws.on('close', (info) => this.onClose(conn, info));
      return conn;
    } catch (e) {
      fail(stats.ws, kind, e.message);
      return null;
    }
  }

  async start() {
    this.current = await this.connect('connect failed');
    this.timer = setInterval(() => this.tick(), cfg.wsIntervalMs);
  }

  tick() {
    const now = Date.now();
    for (const conn of [this.current, ...this.retiring]) {
      if (!conn) continue;
      for (const [seq, t] of conn.pending) {
        if (now - t > cfg.echoTimeoutMs) {
          conn.pending.delete(seq);
          fail(stats.ws, 'no echo on an open connection', `lane ${this.id} msg ${seq} not echoed within ${cfg.echoTimeoutMs} ms`);
        }
      }
    }
    if (!running) return;
    if (!this.current && !this.reconnecting) {
      this.reconnecting = this.connect('reconnect failed').then((c) => {
        this.current = c;
        this.reconnecting = null;
        if (c) this.reconnected();
      });
      return;
    }
    const c = this.current;
    if (!c || !c.ws.open) return;
    const seq = ++this.seq;
    c.pending.set(seq, now);
    c.ws.send(`${this.id}:${seq}:${now}`);
    stats.ws.requests++;
  }

  onMessage(conn, m) {
    const seq = Number(String(m).split(':')[1]);
    const t = conn.pending.get(seq);
    if (t === undefined) {
      fail(stats.ws, 'unexpected echo', `lane ${this.id}: ${String(m).slice(0, 60)}`);
      return;
    }
    // One connection echoes in order: the oldest message still waiting must be this one.
    const oldest = conn.pending.keys().next().value;
    if (seq !== oldest) fail(stats.ws, 'echo out of sequence', `lane ${this.id}: got ${seq}, expected ${oldest}`);
    conn.pending.delete(seq);
    stats.ws.ok++;
    stats.ws.lat.push(Date.now() - t);
  }

  onClose(conn, info) {
    this.retiring.delete(conn);
    if (info.byServer) {
      // Closed by the proxy (e.g. a draining generation at shutdown_timeout): expected behaviour, reported apart.
      stats.ws.info['closed by server'] = (stats.ws.info['closed by server'] || 0) + 1;
      if (conn.pending.size)
        stats.ws.info['messages in flight at a server close'] = (stats.ws.info['messages in flight at a server close'] || 0) + conn.pending.size;
      if (failures.length < MAX_FAILURE_RECORDS)
        failures.push({ t: Date.now(), client: 'websocket', kind: 'info: closed by server', detail: `lane ${this.id}, open for ${Date.now() - conn.opened} ms, ${conn.pending.size} in flight${info.error ? `, ${info.error.code || info.error.message}` : ''}`, info: true });
      conn.pending.clear();
      if (conn === this.current) this.current = null; // tick() reconnects
    }
  }

  reconnected() {
    info(stats.ws, 'reconnects after a server close');
  }

  /** New connection first, then retire the old one once its echoes are in. */
  async reconnect() {
    if (this.reconnecting) await this.reconnecting;
    const fresh = await this.connect('reconnect failed');
    if (!fresh) return;
    const old = this.current;
    this.current = fresh;
    info(stats.ws, 'reconnects forced by the drill');
    if (old) await this.retire(old);
  }

  async retire(conn) {
    this.retiring.add(conn);
    for (let i = 0; i < 200 && conn.pending.size && conn.ws.open; i++) await sleep(25);
    await conn.ws.close(5000);
    this.retiring.delete(conn);
  }

  async stop() {
    clearInterval(this.timer);
    if (this.reconnecting) await this.reconnecting;
    const conns = [this.current, ...this.retiring].filter(Boolean);
    // wait for outstanding echoes (bounded), checking the timeouts ourselves now that tick() has stopped
    for (let i = 0; i < 300 && conns.some((c) => c.pending.size && c.ws.open); i++) await sleep(25);
    this.tick();
    for (const c of conns) {
      for (const seq of c.pending.keys()) fail(stats.ws, 'no echo on an open connection', `lane ${this.id} msg ${seq} still unanswered at stop`);
      c.pending.clear();
    }
    await Promise.all(conns.map((c) => c.ws.close(5000)));
  }
}

// ---------------------------------------------------------------------------------------------------------
// idle keep-alive connections (raw sockets: what the connection was doing when the server closed it matters)

class IdleLane {
  constructor(id) {
    this.id = id;
    this.socket = null;
    this.buf = '';
    this.waiting = null; // {resolve, t0}
    this.lastSaidClose = false;
    this.seq = 0;
  }

  connect() {
    return new Promise((resolve) => {
      const socket = net.connect(cfg.port, cfg.host);
      socket.setNoDelay(true);
      socket.once('connect', () => {
        this.socket = socket;
        this.buf = '';
        this.lastSaidClose = false;
        resolve(true);
      });
      socket.on('data', (d) => this.onData(d));
      socket.on('error', (e) => {
        if (this.socket !== socket) {
          fail(stats.idle, 'connect failed', e.code || e.message);
          resolve(false);
        }
      });
      socket.on('close', () => {
        if (this.socket === socket) this.onClose();
      });
    });
  }

  onData(d) {
    this.buf += d.toString('latin1');
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.waiting) return;
    const head = this.buf.slice(0, end);
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buf.length < end + 4 + len) return;
    const body = this.buf.slice(end + 4, end + 4 + len);
    this.buf = this.buf.slice(end + 4 + len);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    this.lastSaidClose = /\r\nconnection: *close/i.test(head);
    const w = this.waiting;
    this.waiting = null;
    stats.idle.requests++;
    if (status !== 200 || body !== 'ok\n') fail(stats.idle, `status ${status}`, body.slice(0, 80));
    else {
      stats.idle.ok++;
      stats.idle.lat.push(performance.now() - w.t0);
    }
    w.resolve(true);
  }

  onClose() {
    this.socket = null;
    if (!running) return;
    if (this.waiting) {
      // The keep-alive race: our request met the server's close.
      const w = this.waiting;
      this.waiting = null;
      stats.idle.requests++;
      fail(stats.idle, 'connection closed under a request', `lane ${this.id}`);
      w.resolve(false);
    } else if (this.lastSaidClose) info(stats.idle, 'closed after a Connection: close answer');
    else info(stats.idle, 'closed by the server while idle');
  }

  /** One request; resolves when answered (true) or failed (false). */
  async request() {
    if (!this.socket && !(await this.connect())) return false;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (!this.waiting) return;
        this.waiting = null;
        stats.idle.requests++;
        fail(stats.idle, 'unanswered (timeout)', `lane ${this.id}`);
        this.socket?.destroy();
        resolve(false);
      }, cfg.requestTimeoutMs);
      this.waiting = { t0: performance.now(), resolve: (ok) => { clearTimeout(timer); resolve(ok); } };
      this.socket.write(`GET /?idle=${this.id}&seq=${++this.seq} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\n\r\n`);
    });
  }

  async run() {
    while (running) {
      if (this.checking) {
        const c = this.checking;
        this.checking = null;
        c(await this.request());
      } else if (!(await this.request())) await sleep(100);
      const pause = cfg.idleMinMs + Math.random() * (cfg.idleMaxMs - cfg.idleMinMs);
      await new Promise((r) => {
        this.wake = r;
        setTimeout(r, pause);
      });
      this.wake = null;
    }
    this.socket?.destroy();
  }

  /** Send a request now (ending the idle wait); resolves with its outcome. */
  check() {
    return new Promise((resolve) => {
      this.checking = resolve;
      this.wake?.();
    });
  }
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const lanes = Array.from({ length: cfg.ws }, (_, i) => new Lane(i + 1));
  await Promise.all(lanes.map((l) => l.start()));
  const idleLanes = Array.from({ length: cfg.idle }, (_, i) => new IdleLane(i + 1));
  // Opened a few at a time: hundreds of handshakes at once would look like an attack, not like idle clients.
  for (let i = 0; i < idleLanes.length; i += 50) await Promise.all(idleLanes.slice(i, i + 50).map((l) => l.connect()));
  const loops = [
    ...Array.from({ length: cfg.slow }, () => slowLoop()),
    ...Array.from({ length: cfg.uploaders }, () => uploadLoop()),
    ...idleLanes.map((l) => l.run()),
  ];
  process.send({ type: 'ready' });

  let reconnectChain = Promise.resolve();
  await new Promise((resolve) => {
    process.on('message', (m) => {
      if (m?.cmd === 'ws-reconnect') {
        reconnectChain = reconnectChain.then(() => Promise.all(lanes.map((l) => l.reconnect()))).then(() => process.send({ type: 'ws-reconnected' }));
      } else if (m?.cmd === 'check') {
        Promise.all(idleLanes.map((l) => l.check())).then((oks) => process.send({ type: 'checked', answered: oks.filter(Boolean).length, of: oks.length }));
      } else if (m?.cmd === 'stop') resolve();
    });
    process.on('disconnect', () => process.exit(3));
  });

  running = false;
  for (const l of idleLanes) l.wake?.();
  await reconnectChain;
  await Promise.all([...loops, ...lanes.map((l) => l.stop())]);
  slowAgent.destroy();
  uploadAgent.destroy();

  const out = {};
  for (const [k, s] of Object.entries(stats)) {
    s.lat.sort((a, b) => a - b);
    out[k] = { name: s.name, requests: s.requests, ok: s.ok, failures: s.failures, kinds: s.kinds, info: s.info, p50: percentile(s.lat, 50), p99: percentile(s.lat, 99), max: s.lat.at(-1) ?? null };
  }
  process.send({ type: 'result', stats: out, failures }, () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`drill-clients: ${e.stack}\n`);
  process.exit(1);
});
