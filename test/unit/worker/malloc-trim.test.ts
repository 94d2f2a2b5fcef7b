/** @module glibc's malloc_trim through the module the build makes (native/malloc-trim.c, lib/worker/malloc-trim.ts). */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { mallocTrim } from '../../../lib/worker/malloc-trim.js';

const ROOT = path.resolve(fileURLToPath(import.meta.url), '../../../../..');
const MODULE = path.join(ROOT, 'dist/native/malloc-trim.node');

/** What scripts/lib/build-native.mjs needs to build it: its C compiler and Node's headers, found as it finds them. */
const native = (await import(pathToFileURL(path.join(ROOT, 'scripts/lib/build-native.mjs')).href)) as { includeDir(): string | null; compiler(): string };
function canBuild(): boolean {
  try {
    execFileSync(native.compiler(), ['--version'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return native.includeDir() !== null;
}

const glibc = process.platform === 'linux' && Boolean((process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime);
const buildable = glibc && canBuild() && process.env.BATON_NO_NATIVE !== '1';

t.test('the build makes the module wherever a C compiler and Node\'s headers are, and a worker finds it', { skip: buildable ? false : 'no glibc, C compiler or Node headers here' }, async (t) => {
  t.ok(fs.existsSync(MODULE), `${MODULE} built`);
  const trim = mallocTrim();
  t.type(trim, 'function', 'loaded from where the worker looks (dist/native)');
  t.ok([0, 1].includes(trim!()), 'malloc_trim answered 0 or 1');
  t.equal(mallocTrim(), trim, 'loaded once');
});

// In a child: the freed memory must be this process's own, and `gc` exposed.
const CHILD = `
const fs = require('node:fs');
const { trim } = require(process.argv[1]);
const heapRss = () => Number(/\\[heap\\]\\n(?:.*\\n)*?Rss:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/smaps', 'utf8'))?.[1] ?? 0) * 1024;
let bufs = [];
for (let i = 0; i < 1200; i++) bufs.push(Buffer.allocUnsafeSlow(60 * 1024).fill(1));
const pin = Buffer.allocUnsafeSlow(4096).fill(2);
bufs = null;
global.gc();
setTimeout(() => {
  global.gc();
  const before = heapRss();
  const released = trim();
  console.log(JSON.stringify({ before, after: heapRss(), released, pin: pin[0] }));
}, 200);
`;

t.test('it gives back to the kernel heap memory that was freed below a live allocation', { skip: buildable ? false : 'no module on this machine' }, async (t) => {
  // 70 MiB in 60 KiB buffers (each from glibc's heap, below its 128 KiB threshold for a mapping of its own), a
  // small buffer allocated after them and kept, the big ones freed: glibc's free() can give back only the top
  // of its heap, which the small one holds.
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '-e', CHILD, MODULE], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out) as { before: number; after: number; released: number };
  const MiB = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  t.ok(r.before >= 16 * 1048576, `freed memory held in the heap before: ${MiB(r.before)}`);
  t.equal(r.released, 1, 'malloc_trim says memory went back');
  t.ok(r.before - r.after >= 16 * 1048576, `the heap's resident memory fell: ${MiB(r.before)} -> ${MiB(r.after)}`);
});
