/**
 * @module A worker's upstream pools, made at the first request or when the worker warms up once ready: our own
 * HTTP/1.1 pool for http, https and unix targets.
 */
import t from 'tap';
import { closeUpstreams, createUpstreams, warmUpstreams } from '../../../lib/worker/upstream/pools.js';
import { H1Pool } from '../../../lib/worker/upstream/h1-pool.js';
import { makeConfig, route, startUpstream, upstream } from './config-fixture.js';

t.test('a target has no pool until warmUpstreams, which makes one per target', async (t) => {
  const ups = createUpstreams(makeConfig([upstream('u', ['http://127.0.0.1:1', 'http://127.0.0.1:2'])], [route('/', { upstream: 'u' })]));
  t.teardown(() => closeUpstreams(ups));
  const targets = ups.get('u')!.targets;
  t.ok(targets.every((x) => !(x.pool instanceof H1Pool)), 'none before');
  warmUpstreams(ups);
  t.ok(targets.every((x) => x.pool instanceof H1Pool), 'one per target after, our own for http targets');
  const pools = targets.map((x) => x.pool);
  warmUpstreams(ups);
  t.same(targets.map((x) => x.pool), pools, 'warming again keeps them');
});

t.test("an https target's pool is ours too", async (t) => {
  const ups = createUpstreams(makeConfig([upstream('s', ['https://127.0.0.1:3'])], [route('/', { upstream: 's' })]));
  t.teardown(() => closeUpstreams(ups));
  warmUpstreams(ups);
  t.ok(ups.get('s')!.targets[0]!.pool instanceof H1Pool);
});

t.test("a target's first request makes its pool and is answered on it", async (t) => {
  const { origin } = await startUpstream(t, (_req, res) => res.end('ok'));
  const ups = createUpstreams(makeConfig([upstream('u', [origin])], [route('/', { upstream: 'u' })]));
  t.teardown(() => closeUpstreams(ups));
  const target = ups.get('u')!.targets[0]!;
  const body = await new Promise<string>((resolve, reject) => {
    let text = '';
    target.pool.dispatch({ path: '/', method: 'GET', headers: [] }, {
      onConnect() {},
      onHeaders() { return true; },
      onData(chunk: Buffer) {
        text += chunk.toString();
        return true;
      },
      onComplete() {
        resolve(text);
      },
      onError(err) {
        reject(err);
      },
    });
  });
  t.equal(body, 'ok', 'answered');
  t.ok(target.pool instanceof H1Pool, "the target's pool is now made");
});
