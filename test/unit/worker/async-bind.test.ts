/**
 * @module The worker's `AsyncResource.prototype.bind` (lib/worker/async-bind.ts) against Node's own: the same
 * observations from one scenario, Node's first (the replacement is process-wide and stays), then ours; and Node's
 * http2 client, which binds every request, still requests through it.
 */
import { AsyncLocalStorage, AsyncResource, executionAsyncId, triggerAsyncId } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import type net from 'node:net';
import t from 'tap';
import { installAsyncBind } from '../../../lib/worker/async-bind.js';

type Binder = { bind(fn: unknown, thisArg?: unknown): ((...args: unknown[]) => unknown) & { asyncResource: unknown } };

/** What a bound function shows: the scope it runs in, its `this`, arguments, result, length, asyncResource. */
function observe(): Record<string, unknown> {
  const resource = new AsyncResource('Probe') as unknown as Binder & AsyncResource;
  const seen: Record<string, unknown> = {};
  function probe(this: unknown, a: unknown, b: unknown) {
    seen.scope = executionAsyncId() === resource.asyncId();
    seen.trigger = triggerAsyncId() === resource.triggerAsyncId();
    seen.self = this;
    seen.args = [a, b];
    return 'result';
  }
  const bound = resource.bind(probe);
  const caller = { name: 'caller' };
  seen.returned = bound.call(caller, 1, 2);
  seen.callerThis = seen.self === caller;
  const withThis = resource.bind(probe, 'fixed');
  withThis.call(caller, 3);
  seen.fixedThis = seen.self === 'fixed' || (seen.self as object)?.valueOf?.() === 'fixed';
  seen.length = [bound.length, withThis.length];
  seen.name = bound.name;
  // An exception thrown inside leaves the resource's scope.
  const outer = executionAsyncId();
  try {
    resource.bind(() => {
      throw new Error('inside');
    })();
  } catch (err) {
    seen.threw = (err as Error).message;
  }
  seen.unwound = executionAsyncId() === outer;
  // AsyncLocalStorage: a store entered where the resource was made is what the bound function sees.
  const als = new AsyncLocalStorage<string>();
  const inStore = als.run('store', () => (new AsyncResource('Stored') as unknown as Binder).bind(() => als.getStore()));
  seen.store = [inStore(), als.getStore() ?? null];
  // Each bound function keeps its own resource.
  const a = new AsyncResource('A') as unknown as Binder & AsyncResource;
  const b = new AsyncResource('B') as unknown as Binder & AsyncResource;
  const boundA = a.bind(() => executionAsyncId());
  const boundB = b.bind(() => executionAsyncId());
  seen.own = [boundA.asyncResource === a, boundB.asyncResource === b, boundA() === a.asyncId(), boundB() === b.asyncId()];
  seen.resource = bound.asyncResource === resource;
  const other = new AsyncResource('Other');
  bound.asyncResource = other;
  seen.setResource = bound.asyncResource === other;
  seen.enumerable = Object.keys(bound).includes('asyncResource');
  seen.outside = executionAsyncId() !== resource.asyncId();
  try {
    resource.bind(42);
    seen.thrown = null;
  } catch (err) {
    seen.thrown = (err as NodeJS.ErrnoException).code;
  }
  return seen;
}

t.test('a bound function behaves as with Node\'s bind: scope, this, arguments, length, asyncResource, errors', async (t) => {
  const nodes = observe();
  installAsyncBind();
  const ours = observe();
  t.same(ours, nodes);
  t.match(ours, {
    scope: true, trigger: true, returned: 'result', callerThis: true, fixedThis: true, length: [2, 2], name: 'bound',
    threw: 'inside', unwound: true, store: ['store', null], own: [true, true, true, true],
    resource: true, setResource: true, enumerable: true, outside: true, thrown: 'ERR_INVALID_ARG_TYPE',
  });
  // Ours, not Node's, is in place: one accessor shared by every bound function (Node makes two per call).
  const accessorOf = (f: unknown) => Object.getOwnPropertyDescriptor(f, 'asyncResource')!.get;
  const r = new AsyncResource('R') as unknown as Binder;
  t.equal(accessorOf(r.bind(() => {})), accessorOf(r.bind(() => {})), 'installed');
});

t.test('the asyncResource property warns DEP0172 once, however often it is read or written', async (t) => {
  // In a process of its own: the warning is once per process.
  const script = `
    import { AsyncResource } from 'node:async_hooks';
    const { installAsyncBind } = await import(process.argv[1]);
    installAsyncBind();
    let warnings = 0;
    process.on('warning', (w) => { if (w.code === 'DEP0172') warnings++; });
    const a = new AsyncResource('A').bind(() => {});
    const b = new AsyncResource('B').bind(() => {}, {});
    void a.asyncResource; void a.asyncResource; b.asyncResource = null; void b.asyncResource;
    setImmediate(() => console.log(warnings));
  `;
  const module = new URL('../../../lib/worker/async-bind.js', import.meta.url).href;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script, module], { timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  t.equal(out.trim(), '1');
});

t.test('Node\'s http2 client requests through it, on a connected session and on one still connecting', async (t) => {
  installAsyncBind();
  const server = http2.createServer((req, res) => res.end(`hello ${req.url}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.close());
  const get = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': path });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => resolve(body));
      stream.on('error', reject);
    });
  // The first request is made before the session connects (Node defers it, bound); the next ones after.
  t.equal(session.connecting, true);
  t.equal(await get('/a'), 'hello /a');
  t.same(await Promise.all([get('/b'), get('/c')]), ['hello /b', 'hello /c']);
});
