// The gRPC side of scripts/upgrade-drill, run as a child process with an IPC channel: a @grpc/grpc-js server
// (the upstream, on 127.0.0.1:PORT, test/fixtures/grpc/echo.proto) and, once told where the proxy is, grpc-js
// clients through it for the whole run:
//   - stream: N lanes of server-streaming calls, 20 messages 100 ms apart (about 2 s each), checked in order
//   - bidi:   N lanes of bidirectional calls, 10 ping-pongs 100 ms apart, each echo checked
//   - unary:  one lane of unary calls back to back
// Every call must end with status OK and every message. Parent -> child: {cmd: 'start', target: 'host:port'}
// (after the proxy is up; answers {type: 'ready'} after a first call went through), {cmd: 'stop'} (no new calls,
// wait for those in flight, answer {type: 'result', stats, calls, failures}).
//
//   node scripts/lib/drill-grpc.mjs '{"port":19000,"lanes":4}'
import path from 'node:path';
import { createRequire } from 'node:module';
import { REPO_DIR, percentile, sleep } from './common.mjs';

const cfg = { port: 0, lanes: 4, deadlineMs: 30_000, ...JSON.parse(process.argv[2] || '{}') };
const require = createRequire(path.join(REPO_DIR, 'package.json'));
let grpc;
let loader;
try {
  grpc = require('@grpc/grpc-js');
  loader = require('@grpc/proto-loader');
} catch {
  process.send?.({ type: 'unavailable', why: '@grpc/grpc-js is not installed (a dev dependency: npm ci)' });
  process.exit(0);
}

const def = loader.loadSync(path.join(REPO_DIR, 'test/fixtures/grpc/echo.proto'), { defaults: true });
const Echo = grpc.loadPackageDefinition(def).baton.test.Echo;

// ---- the upstream
const server = new grpc.Server();
server.addService(Echo.service, {
  Unary: (call, cb) => cb(null, { text: call.request.text, n: call.request.n, delay: 0 }),
  ServerStream: (call) => {
    let i = 0;
    const next = () => {
      if (call.cancelled) return;
      if (i >= call.request.n) return call.end();
      call.write({ text: `${call.request.text}-${i}`, n: i++, delay: 0 });
      setTimeout(next, call.request.delay);
    };
    next();
  },
  ClientStream: (call, cb) => {
    let n = 0;
    call.on('data', () => n++);
    call.on('end', () => cb(null, { text: '', n, delay: 0 }));
  },
  Bidi: (call) => {
    call.on('data', (m) => call.write({ text: `echo:${m.text}`, n: m.n, delay: 0 }));
    call.on('end', () => call.end());
  },
});

// ---- the clients
let running = true;
let client = null;
const failures = [];
const calls = []; // [start, end] of every streaming call (ms since the epoch), for the parent's "spanned a drain"
const MAX_RECORDS = 20_000;
const stats = {};
for (const k of ['stream', 'bidi', 'unary']) stats[k] = { requests: 0, ok: 0, failures: 0, kinds: {}, lat: [] };

function done(kind, t0, err) {
  const s = stats[kind];
  s.requests++;
  const t1 = Date.now();
  if (err) {
    s.failures++;
    const what = typeof err === 'string' ? err : `status ${err.code} ${grpc.status[err.code] ?? ''}: ${err.details ?? err.message}`;
    s.kinds[what] = (s.kinds[what] || 0) + 1;
    if (failures.length < 200) failures.push({ t: t1, client: `gRPC ${kind}`, kind: what, detail: `call started ${t1 - t0} ms before` });
  } else {
    s.ok++;
    s.lat.push(t1 - t0);
  }
  if (kind !== 'unary' && calls.length < MAX_RECORDS) calls.push([t0, t1]);
}

const deadline = () => ({ deadline: Date.now() + cfg.deadlineMs });

function streamCall(lane) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let got = 0;
    let bad = null;
    const call = client.ServerStream({ text: `lane${lane}`, n: 20, delay: 100 }, deadline());
    call.on('data', (m) => {
      if (m.text !== `lane${lane}-${got}`) bad ??= `message ${got} was ${JSON.stringify(m.text)}`;
      got++;
    });
    call.on('error', (err) => { done('stream', t0, err); resolve(); });
    call.on('status', (s) => {
      if (s.code !== grpc.status.OK) return; // 'error' reports it
      done('stream', t0, bad ?? (got === 20 ? null : `${got}/20 messages`));
      resolve();
    });
  });
}

function bidiCall(lane) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let got = 0;
    let bad = null;
    const call = client.Bidi(deadline());
    const send = () => call.write({ text: `b${lane}-${got}`, n: got, delay: 0 });
    call.on('data', (m) => {
      if (m.text !== `echo:b${lane}-${got}`) bad ??= `echo ${got} was ${JSON.stringify(m.text)}`;
      got++;
      if (got < 10) setTimeout(send, 100);
      else call.end();
    });
    call.on('error', (err) => { done('bidi', t0, err); resolve(); });
    call.on('status', (s) => {
      if (s.code !== grpc.status.OK) return;
      done('bidi', t0, bad ?? (got === 10 ? null : `${got}/10 echoes`));
      resolve();
    });
    send();
  });
}

function unaryCall(i) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    client.Unary({ text: `u${i}`, n: i, delay: 0 }, deadline(), (err, res) => {
      done('unary', t0, err ?? (res.text === `u${i}` ? null : `answer ${JSON.stringify(res.text)}`));
      resolve();
    });
  });
}

async function lane(fn, n) {
  for (let i = 0; running; i++) await fn(n === undefined ? i : n);
}

const lanes = [];
function start(target) {
  client = new Echo(target, grpc.credentials.createInsecure());
  client.Unary({ text: 'hello', n: 0, delay: 0 }, { deadline: Date.now() + 10_000 }, (err) => {
    if (err) {
      process.send?.({ type: 'start-failed', why: `first call: status ${err.code}: ${err.details}` });
      return;
    }
    for (let l = 0; l < cfg.lanes; l++) lanes.push(lane(streamCall, l), lane(bidiCall, l));
    lanes.push(lane(unaryCall));
    process.send?.({ type: 'ready' });
  });
}

process.on('message', async (m) => {
  if (m?.cmd === 'start') start(m.target);
  if (m?.cmd === 'stop') {
    running = false;
    await Promise.race([Promise.all(lanes), sleep(cfg.deadlineMs + 5000)]);
    const out = {};
    for (const [k, s] of Object.entries(stats)) {
      s.lat.sort((a, b) => a - b);
      out[k] = { requests: s.requests, ok: s.ok, failures: s.failures, kinds: s.kinds, p99: percentile(s.lat, 99) };
    }
    process.send?.({ type: 'result', stats: out, calls, failures }, () => {
      client?.close();
      server.forceShutdown();
      process.exit(0);
    });
  }
});
process.on('disconnect', () => process.exit(0));

server.bindAsync(`127.0.0.1:${cfg.port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.send?.({ type: 'start-failed', why: `bind: ${err.message}` });
    process.exit(1);
  }
  process.send?.({ type: 'listening' });
});
