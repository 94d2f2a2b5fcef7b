/** @module An idle worker's one memory-reducing collection per idle spell. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { IdleMemory, lastResortGc } from '../../../lib/worker/idle-memory.js';

function setup(idleMs = 10_000) {
  let now = 0;
  let rss = 100;
  const calls: number[] = [];
  const idle = new IdleMemory(() => { calls.push(now); rss = 70; }, idleMs, () => now, () => rss);
  return { idle, calls, advance: (ms: number) => { now += ms; } };
}

t.test('after a busy spell, one collection once no request came for the idle time, and none again until requests come', async (t) => {
  const { idle, calls, advance } = setup();
  t.equal(idle.tick(5, false), null, 'requests came: not idle');
  advance(9_000);
  t.equal(idle.tick(5, false), null, '9 s quiet: not yet');
  advance(1_000);
  const r = idle.tick(5, false);
  t.same(r && { before: r.rssBefore, after: r.rssAfter }, { before: 100, after: 70 }, '10 s quiet: collected, with RSS before and after');
  advance(60_000);
  t.equal(idle.tick(5, false), null, 'still quiet: nothing grew since');
  t.equal(calls.length, 1);
  t.equal(idle.tick(6, false), null, 'a request: the quiet starts again');
  advance(10_000);
  t.not(idle.tick(6, false), null, 'quiet again for 10 s: a second collection');
  t.equal(calls.length, 2);
});

t.test('a worker that has served nothing collects nothing', async (t) => {
  const { idle, calls, advance } = setup();
  for (let i = 0; i < 30; i++) {
    advance(1_000);
    idle.tick(0, false);
  }
  t.equal(calls.length, 0);
});

t.test('an open WebSocket tunnel keeps the worker from counting as idle, and the quiet starts when it closes', async (t) => {
  const { idle, calls, advance } = setup();
  idle.tick(3, false);
  for (let i = 0; i < 20; i++) {
    advance(1_000);
    idle.tick(3, true);
  }
  t.equal(calls.length, 0, 'no collection while a tunnel is open');
  advance(9_000);
  idle.tick(3, false);
  t.equal(calls.length, 0, 'the tunnel closed just now');
  advance(10_000);
  idle.tick(3, false);
  t.equal(calls.length, 1, '10 s after it closed');
});

t.test("the collection is V8's full GC of the last-resort flavour, and none without --expose-gc", async (t) => {
  const seen: unknown[] = [];
  t.equal(lastResortGc(undefined), null, 'gc not exposed');
  lastResortGc((o: unknown) => { seen.push(o); })!();
  t.same(seen, [{ type: 'major', flavor: 'last-resort' }]);
});

t.test("on this Node, with --expose-gc, the collection runs; from Node 22 it shrinks V8's grown young generation at once", async (t) => {
  // A child process: gc is exposed there as in a worker, and this test process's heap is left alone.
  const code = `(async () => {
    const v8 = require('v8');
    const { lastResortGc } = await import(${JSON.stringify(new URL('../../../lib/worker/idle-memory.js', import.meta.url).href)});
    const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').physical_space_size;
    let keep = [];
    for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 100000) keep = keep.slice(50000); }
    keep = null;
    const before = young();
    const collect = lastResortGc();
    if (collect) collect();
    process.stdout.write(JSON.stringify({ collect: collect !== null, before, after: young() }));
  })()`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', code], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { collect: boolean; before: number; after: number };
  const major = Number(process.versions.node.split('.')[0]);
  t.equal(out.collect, true);
  // Node 20 shrinks it only once the allocation rate has dropped, as in an idle worker (not at once, as here).
  if (major >= 22) t.ok(out.after < out.before / 4, `young generation ${out.before} → ${out.after} bytes`);
});
