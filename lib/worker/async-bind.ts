/**
 * @module `AsyncResource.prototype.bind` without its per-call cost. Node's http2 client binds every request it
 * makes (`session.request()`: `new AsyncResource('PendingRequest').bind(...)`, in Node 20, 22 and 24), and Node's
 * `bind` defines the deprecated `asyncResource` property (DEP0172) with two fresh `deprecate()` wrappers per call,
 * each setting a function's prototype: 7 µs per bind on Node 20 and 2.2 µs on Node 24 (scratch micro-benchmark),
 * 6 of the 63 µs a worker spent per request behind an HTTP/2 upstream (`scripts/cpu-profile --upstream http2`,
 * `deprecate` and `bind` were 8.6% of its samples). This `bind` behaves the same way (the bound function runs `fn`
 * in the resource's async scope, with the caller's `this` or `thisArg`; it has `fn`'s length and an
 * `asyncResource` accessor that warns DEP0172 once) with one shared accessor: 0.6–0.85 µs on both.
 *
 * The trade, measured (scripts/lib/bench-ab.mjs, BENCH_UPSTREAM_H2=1): CPU per request behind an HTTP/2 upstream
 * 0.79 (Node 20) and 0.86–0.93 (Node 24), wrk's p99 5% and 20% higher. The likely cause, seen with `--trace-gc`
 * for a like change (request options, measured and not kept): V8's scavenges never free an http2 stream, so less
 * garbage per request fills the old generation more slowly, full collections come further apart, and each pause
 * frees more streams.
 *
 * Installed once, by the worker only (the master makes no HTTP/2 requests). Node throws its own errors: anything
 * but a function goes to Node's `bind`.
 */
import { AsyncResource } from 'node:async_hooks';

const kResource = Symbol('asyncResource');
let warned = false;

function deprecated(): void {
  if (warned || process.noDeprecation) return;
  warned = true;
  process.emitWarning('The asyncResource property on bound functions is deprecated', 'DeprecationWarning', 'DEP0172');
}

type Bound = ((...args: unknown[]) => unknown) & { [kResource]: AsyncResource };

/** One accessor for every bound function: it reads the resource from the function it is called on. */
const accessor = {
  // As Node's: a descriptor that inherits nothing (a polluted Object.prototype.value would make it invalid).
  __proto__: null,
  configurable: true,
  enumerable: true,
  get(this: Bound): AsyncResource {
    deprecated();
    return this[kResource];
  },
  set(this: Bound, value: AsyncResource): void {
    deprecated();
    this[kResource] = value;
  },
} as PropertyDescriptor;

let installed = false;

export function installAsyncBind(): void {
  if (installed) return;
  installed = true;
  // Node's takes a `thisArg` too (documented), which its type declarations leave out.
  const proto = AsyncResource.prototype as unknown as { bind(fn: unknown, thisArg?: unknown): unknown };
  const nodeBind = proto.bind;
  proto.bind = function bind(this: AsyncResource, fn: unknown, thisArg?: unknown): unknown {
    if (typeof fn !== 'function') return nodeBind.call(this, fn, thisArg);
    const f = fn as (...args: unknown[]) => unknown;
    const resource = this;
    const bound = (thisArg === undefined
      ? function bound(this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(f, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, f, thisArg)) as unknown as Bound;
    Object.defineProperty(bound, 'length', { __proto__: null, configurable: true, enumerable: false, writable: false, value: f.length } as PropertyDescriptor);
    bound[kResource] = resource;
    Object.defineProperty(bound, 'asyncResource', accessor);
    return bound;
  };
}
