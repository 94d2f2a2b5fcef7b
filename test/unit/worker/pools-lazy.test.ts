/** @module A worker's upstream pools: undici's, made at the first request or when the worker warms up once ready. */
import t from 'tap';
import { closeUpstreams, createUpstreams, warmUpstreams } from '../../../lib/worker/upstream/pools.js';
import { undiciDispatchers } from '../../../lib/util/internals.js';
import { makeConfig, route, startUpstream, upstream } from './config-fixture.js';

t.test('a target has no undici pool until warmUpstreams, which makes one per target', async (t) => {
  const ups = createUpstreams(makeConfig([upstream('u', ['http://127.0.0.1:1', 'http://127.0.0.1:2'])], [route('/', { upstream: 'u' })]));
  t.teardown(() => closeUpstreams(ups));
  const { Pool } = undiciDispatchers();
  const targets = ups.get('u')!.targets;
  t.ok(targets.every((x) => !(x.pool instanceof Pool)), 'none before');
  warmUpstreams(ups);
  t.ok(targets.every((x) => x.pool instanceof Pool), 'one per target after');
  const pools = targets.map((x) => x.pool);
  warmUpstreams(ups);
  t.same(targets.map((x) => x.pool), pools, 'warming again keeps them');
});

t.test("a target's first request makes its pool and is answered on it", async (t) => {
  const { origin } = await startUpstream(t, (_req, res) => res.end('ok'));
  const ups = createUpstreams(makeConfig([upstream('u', [origin])], [route('/', { upstream: 'u' })]));
  t.teardown(() => closeUpstreams(ups));
  const target = ups.get('u')!.targets[0]!;
  const body = await new Promise<string>((resolve, reject) => {
    let text = '';
    target.pool.dispatch({ path: '/', method: 'GET', headers: [] }, {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData(_c, chunk: Buffer) {
        text += chunk.toString();
      },
      onResponseEnd() {
        resolve(text);
      },
      onResponseError(_c, err) {
        reject(err);
      },
    });
  });
  t.equal(body, 'ok', 'answered');
  t.ok(target.pool instanceof undiciDispatchers().Pool, "the target's pool is now undici's");
});
