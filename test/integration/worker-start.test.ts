/**
 * How a worker process starts: from the bundle that `npm run build` makes (dist/bundle/worker/main.js) unless a
 * later tsc-only build made it stale, and the start-up trace (BATON_STARTUP_TRACE) that scripts/reload-timing reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { copyPackage, Daemon, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const RETURN = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

function cmdline(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
}

async function newGeneration(d: Daemon, from: unknown): Promise<number[]> {
  return waitFor('a serving new generation, the old one gone', 30_000, async () => {
    const s = await d.status().catch(() => null);
    const workers = (s?.workers ?? []) as { pid: number; generation: number; state: string }[];
    return s && s.generation !== from && workers.length > 0 && workers.every((w) => w.generation === s.generation && w.state === 'ready') ? workers.map((w) => w.pid) : undefined;
  });
}

t.test('workers start from the bundle when it is as new as the compiled entry, and from the compiled files once a tsc-only build is newer', async (t) => {
  const d = new Daemon(t);
  const bin = copyPackage(fs.mkdtempSync(path.join(d.dir, 'pkg-')));
  const dist = path.resolve(path.dirname(bin), '../dist');
  const bundle = path.join(dist, 'bundle/worker/main.js');
  const compiled = path.join(dist, 'lib/worker/main.js');
  t.ok(fs.existsSync(bundle), 'npm run build made the worker bundle');
  const now = Date.now() / 1000;
  fs.utimesSync(compiled, now, now);
  fs.utimesSync(bundle, now + 60, now + 60);
  await d.start({ body: RETURN, bin, workers: 1 });
  const port = await d.port();
  const [first] = await newGeneration(d, null);
  t.match(cmdline(first!), 'dist/bundle/worker/main.js', 'the bundle');
  t.equal((await request(port, '/')).body, 'hi\n', 'served by the bundled worker');

  fs.utimesSync(compiled, now + 120, now + 120);
  const g = (await d.status()).generation;
  d.signal('SIGHUP');
  const [second] = await newGeneration(d, g);
  t.match(cmdline(second!), 'dist/lib/worker/main.js', 'the compiled files, newer than the bundle');
  t.equal((await request(port, '/')).body, 'hi\n', 'served by the unbundled worker');
});

t.test('with BATON_STARTUP_TRACE a reload traces each step from the signal to the new generation, in the master and each worker', async (t) => {
  const d = new Daemon(t);
  const trace = path.join(d.dir, 'trace.jsonl');
  await d.start({ body: RETURN, workers: 2, env: { BATON_STARTUP_TRACE: trace } });
  const g = (await d.status()).generation;
  const master = d.masterPid;
  const before = fs.readFileSync(trace, 'utf8').length;
  d.signal('SIGHUP');
  const workers = await newGeneration(d, g);
  const lines = fs.readFileSync(trace, 'utf8').slice(before).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; role: string; step: string; at: number; cpu?: number });
  const at = (pid: number, step: string) => lines.find((l) => l.pid === pid && l.step === step)?.at;
  const hup = at(master, 'event reload');
  const ready = at(master, 'event generationReady');
  t.ok(hup !== undefined && ready !== undefined && hup <= ready, 'the master: the signal, then its new generation ready');
  for (const w of workers) {
    const steps = ['process start', 'node bootstrap done', 'worker modules loaded', 'start message received', 'request handler built', 'listening', 'ready sending'].map((s) => at(w, s));
    t.ok(steps.every((x) => x !== undefined), `worker ${w} traced every step`);
    t.same([...steps].sort((a, b) => a! - b!), steps, `worker ${w}: in start-up order`);
    // Each process stamps its steps from its own clock origin (`performance.timeOrigin`, read once at its start), so
    // two processes' stamps can disagree by a millisecond or so: the order across processes is checked within that.
    const SKEW_MS = 5;
    t.ok(hup! <= steps[0]! + SKEW_MS && steps.at(-1)! <= ready! + SKEW_MS, `worker ${w} started after the signal and was ready before its generation (hup ${hup}, start ${steps[0]}, ready sending ${steps.at(-1)}, generation ready ${ready})`);
    t.ok((lines.find((l) => l.pid === w && l.step === 'ready sending')?.cpu ?? 0) > 0, 'with the CPU it had used');
  }
});
