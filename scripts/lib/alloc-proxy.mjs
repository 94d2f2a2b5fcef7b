// The measured side of scripts/alloc-per-request: baton's request handler behind baton's own servers, as a
// worker wires them (lib/worker/main.ts), with the access log written to a file.
//   node --expose-gc --max-semi-space-size=128 --min-semi-space-size=128 alloc-proxy.mjs DIST UPSTREAM DIR h1|h2c access.log|off
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import inspector from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const [dist, upstream, dir, mode, access] = process.argv.slice(2);
const lib = (p) => import(pathToFileURL(path.join(dist, p)).href);
const { loadConfig } = await lib('config/load.js');
const { createLogs } = await lib('log/logger.js');
const { createServer } = await lib('worker/servers.js');
const { Drainer } = await lib('worker/drain.js');
const { answerClientError } = await lib('worker/client-error.js');
const proxy = await lib('worker/handler.js').catch(() => null) ?? await lib('worker/proxy.js');
const createRequestHandler = proxy.createRequestHandler;

const file = path.join(dir, 'baton.yaml');
fs.writeFileSync(file, `
log: { level: info, error: error.log, access: ${access} }
listeners:
  - listen: 127.0.0.1:0
    h2c: ${mode === 'h2c'}
upstreams:
  app:
    targets: [{ url: "${upstream}" }]
routes:
  - path: /healthz
    return: { status: 200, body: "ok\\n" }
  - path: /
    upstream: app
`);
const loaded = loadConfig(file);
if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
const config = loaded.config;
const logs = createLogs(config.log, { role: 'worker', generation: 1 });
const handler = createRequestHandler(config, logs, { generation: 1 });
const drainer = new Drainer();
// The handlers lib/worker/main.ts gives the servers (older versions: clientError from client-error.js).
const server = createServer(config.listeners[0], {
  request: (req, res) => handler.handle(req, res),
  upgrade: (req, socket, head) => handler.upgrade(req, socket, head),
  clientError: handler.clientError ? (err, socket) => handler.clientError(err, socket) : answerClientError,
}, drainer, config.limits, logs.error);
await new Promise((r) => server.listen(0, '127.0.0.1', r));

let gcs = 0;
let markedAt = Infinity;
// Entries arrive asynchronously: count only collections that started inside the window.
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.startTime >= markedAt) gcs++; }).observe({ entryTypes: ['gc'] });
let before = 0;
let session = null;
let profileFile = null;

process.on('message', async (m) => {
  if (m.type === 'mark') {
    profileFile = m.profile;
    if (profileFile) {
      session = new inspector.Session();
      session.connect();
      await new Promise((r) => session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }, r));
    }
    global.gc();
    global.gc();
    await new Promise((r) => setImmediate(r));
    gcs = 0;
    markedAt = performance.now();
    before = v8.getHeapStatistics().used_heap_size;
    process.send({ type: 'marked' });
  } else if (m.type === 'measure') {
    const after = v8.getHeapStatistics().used_heap_size;
    await new Promise((r) => setTimeout(r, 100));
    const n = gcs;
    markedAt = Infinity;
    if (session) {
      const { profile } = await new Promise((r) => session.post('HeapProfiler.stopSampling', (err, res) => r(res)));
      fs.writeFileSync(profileFile, JSON.stringify(profile));
      session.disconnect();
      session = null;
    }
    process.send({ type: 'measured', bytes: after - before, gcs: n });
  }
});
process.send({ port: server.address().port });
