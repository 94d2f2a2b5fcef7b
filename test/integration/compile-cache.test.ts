/** @module V8's compile cache: on a Node that has one, the master enables it and its workers start with it too. */
import fs from 'node:fs';
import module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Daemon, proxyAll, waitFor } from '../helpers/daemon.js';

const hasCache = typeof (module as { enableCompileCache?: unknown }).enableCompileCache === 'function';

t.test('on a Node with a compile cache, the workers start with the directory the master enabled, which fills with code', { skip: hasCache ? false : `Node ${process.version} has no module.enableCompileCache (Node >= 22.1): nothing to enable` }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-cc-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const d = new Daemon(t);
  const env = { TMPDIR: tmp, NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined };
  await d.start({ body: proxyAll('http://127.0.0.1:1'), env });
  const worker = await waitFor('a worker', 30_000, () => d.workerPids()[0]);
  const environ = fs.readFileSync(`/proc/${worker}/environ`, 'utf8').split('\0');
  const dir = environ.find((v) => v.startsWith('NODE_COMPILE_CACHE='))?.slice('NODE_COMPILE_CACHE='.length);
  t.equal(dir, path.join(tmp, 'node-compile-cache'), "the worker's NODE_COMPILE_CACHE");
  await waitFor('cache files written', 30_000, () => (fs.existsSync(dir!) && fs.readdirSync(dir!).length > 0 ? true : undefined));
  t.pass('the cache directory has entries');
});
