// scripts/alloc-per-request — heap bytes a worker allocates per proxied request: a deterministic measure (no
// clock, no throughput) to compare two versions of the request path on a shared machine.
//
// One process (scripts/lib/alloc-proxy.mjs) runs baton's request handler and servers exactly as a worker wires
// them, with the access log on (to a file), and a young generation large enough that no GC runs during the
// measured requests; this process runs the upstream and the client. After --warmup requests (JIT, pools,
// caches), the proxy collects garbage and reads V8's used heap size; after --requests more it reads it again.
// The difference over the request count is the bytes allocated per request; a GC inside the window would
// spoil it, so the run says how many happened (it must be 0).
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const { Pool, H2CClient } = createRequire(path.join(repo, 'package.json'))('undici');

const HELP = `usage: scripts/alloc-per-request [options]

  --kind get|post|h2   GET over HTTP/1.1 keep-alive (default), POST with a 1 KiB body, or GET over h2c
  --requests N         measured requests (default 2000)
  --warmup N           requests before the measurement (default 3000)
  --dist PATH          the compiled lib/ to measure (default: ${path.join(repo, 'dist/lib')})
  --runs N             repeat the measurement N times in one process and print each (default 3)
  --profile FILE       also write a sampling heap profile (.heapprofile) of the measured requests
  --access file|off    the access log: to a file (default), or off
`;

function parseArgs(argv) {
  const o = { kind: 'get', requests: 2000, warmup: 3000, dist: path.join(repo, 'dist/lib'), runs: 3, profile: null, access: 'file' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--kind') o.kind = v();
    else if (a === '--requests') o.requests = Number(v());
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--dist') o.dist = path.resolve(v());
    else if (a === '--runs') o.runs = Number(v());
    else if (a === '--profile') o.profile = path.resolve(v());
    else if (a === '--access') o.access = v();
    else if (a === '-h' || a === '--help') { process.stdout.write(HELP); process.exit(0); }
    else { process.stderr.write(`unknown option ${a}\n${HELP}`); process.exit(2); }
  }
  if (!['get', 'post', 'h2'].includes(o.kind)) { process.stderr.write(`--kind: get, post or h2\n`); process.exit(2); }
  return o;
}

const opt = parseArgs(process.argv.slice(2));
const BODY = Buffer.alloc(1024, 'a');
const ANSWER = Buffer.alloc(1024, 'b');

const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': ANSWER.length, 'x-upstream': 'alloc' });
    res.end(ANSWER);
  });
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-alloc-'));
const child = fork(path.join(here, 'alloc-proxy.mjs'), [opt.dist, upstreamUrl, dir, opt.kind === 'h2' ? 'h2c' : 'h1', opt.access === 'off' ? 'off' : 'access.log'], {
  execArgv: ['--expose-gc', '--max-semi-space-size=256', '--min-semi-space-size=256'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const replies = [];
let waiting = null;
child.on('message', (m) => { if (waiting) { const w = waiting; waiting = null; w(m); } else replies.push(m); });
const ask = (msg) => new Promise((resolve) => {
  if (replies.length) return resolve(replies.shift());
  waiting = resolve;
  if (msg !== undefined) child.send(msg);
});
const cleanup = () => {
  child.kill('SIGKILL');
  upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
};

try {
  const { port } = await ask();
  const origin = `http://127.0.0.1:${port}`;
  const client = opt.kind === 'h2' ? new H2CClient(origin) : new Pool(origin, { connections: 4, pipelining: 1 });
  const one = async (i) => {
    const res = await client.request({
      path: `/alloc/${i % 10}?token=t${i % 7}`,
      method: opt.kind === 'post' ? 'POST' : 'GET',
      headers: { 'user-agent': 'alloc-per-request', accept: '*/*', 'content-type': opt.kind === 'post' ? 'text/plain' : undefined },
      body: opt.kind === 'post' ? BODY : null,
    });
    await res.body.arrayBuffer();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  };
  const send = async (n) => {
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => { while (next < n) await one(next++); }));
  };
  await send(opt.warmup);
  const rows = [];
  for (let r = 0; r < opt.runs; r++) {
    const profile = opt.profile !== null && r === opt.runs - 1 ? opt.profile : null;
    await ask({ type: 'mark', profile });
    await send(opt.requests);
    const m = await ask({ type: 'measure' });
    rows.push(m);
  }
  await client.close();
  const node = process.version;
  for (const m of rows) {
    console.log(`kind=${opt.kind} access=${opt.access} node=${node} requests=${opt.requests} bytes/request=${(m.bytes / opt.requests).toFixed(0)} gcs_during=${m.gcs}`);
  }
  const clean = rows.filter((m) => m.gcs === 0).map((m) => m.bytes / opt.requests).sort((a, b) => a - b);
  if (clean.length > 0) console.log(`median bytes/request=${clean[Math.floor(clean.length / 2)].toFixed(0)} over ${clean.length} runs without a GC`);
  if (opt.profile) console.log(`profile: ${opt.profile}`);
} finally {
  cleanup();
}
