import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Daemon, ROOT, freePort, waitFor, withoutTapHook } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

// Two packs and two global installs (from npm's cache, filled by `npm ci`) on a shared machine.
t.setTimeout(300_000);

const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const [major, minor, patch] = version.split(/[.-]/).map(Number) as [number, number, number];
const NEXT = `${major}.${minor}.${patch + 1}`;

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "installed\\n" }
`;

interface Run { code: number; stdout: string; stderr: string }

/**
 * Commands run as an operator would: `baton` found on PATH, and node (for the bin's `#!/usr/bin/env node`) the
 * one running this test, so CI on Node 22 and 24 tests those. npm's own variables (set when the suite runs under
 * `npm test`) are dropped so they cannot redirect the nested npm.
 */
function env(extraPath: string[] = []): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) clean[k] = v;
  clean.PATH = [...extraPath, path.dirname(process.execPath), process.env.PATH ?? ''].join(':');
  return clean;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const runEnv = opts.env ?? env();
  return new Promise((resolve) => {
    execFile(...withoutTapHook(cmd, args, runEnv.NODE_OPTIONS ?? ''), { cwd: opts.cwd ?? ROOT, env: runEnv, timeout: 180_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** scripts/release into `out`; returns the tarball's path. */
async function release(out: string, extra: string[] = []): Promise<string> {
  const r = await run(path.join(ROOT, 'scripts/release'), ['--no-build', '--out', out, ...extra]);
  if (r.code !== 0) throw new Error(`scripts/release failed: ${r.stderr}`);
  return r.stdout.split('\n')[0]!;
}

async function installGlobal(prefix: string, tarball: string): Promise<void> {
  const r = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball]);
  if (r.code !== 0) throw new Error(`npm install -g ${tarball} failed: ${r.stderr}`);
  // npm 11 lists packages whose scripts it did not run; a packed baton has none (prepare needs tsc and sources).
  if (/install-scripts|prepare/.test(r.stderr)) throw new Error(`npm install -g ${tarball} warned about scripts: ${r.stderr}`);
}

const tarEntries = async (tarball: string) => (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean);

/** What a server needs: the bin, compiled lib and its bundles (no maps, no test-only code), example conf, metadata. */
const SHIPPED = /^package\/(bin\/baton|conf\/[^/]+|dist\/(lib|bundle)\/.+\.js|dist\/native\/malloc-trim\.node|README\.md|package\.json|npm-shrinkwrap\.json)$/;

t.test('npm pack --dry-run lists only what a server needs', async (t) => {
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  t.equal(r.code, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => `package/${f.path}`);
  t.same(files.filter((f) => !SHIPPED.test(f) || f.endsWith('/metrics/parse.js')), [], 'no tests, sources, maps or test helpers');
  t.ok(files.includes('package/dist/lib/cli/main.js') && files.includes('package/bin/baton'), 'the compiled code and the bin');
  t.ok(files.includes('package/dist/bundle/cli.js') && files.includes('package/dist/bundle/worker/main.js'), 'the bundles bin/baton and the master start from');
  t.equal(files.includes('package/dist/native/malloc-trim.node'), fs.existsSync(path.join(ROOT, 'dist/native/malloc-trim.node')), 'the malloc_trim module, when the build made one');
});

t.test('a released tarball installs globally; its baton runs -v, -t, serves, and upgrades to a newer tarball with baton upgrade', async (t) => {
  const d = new Daemon(t, 'baton-pkg-');
  const prefix = path.join(d.dir, 'prefix');
  const first = await release(path.join(d.dir, 'out'));
  t.equal(path.basename(first), `baton-proxy-${version}.tgz`, 'the npm name is baton-proxy');
  const entries = await tarEntries(first);
  t.same(entries.filter((f) => !SHIPPED.test(f) || f.endsWith('/metrics/parse.js')), [], 'the tarball holds only what a server needs');
  t.ok(entries.includes('package/npm-shrinkwrap.json'), 'dependencies pinned as tested');

  await installGlobal(prefix, first);
  const onPath = env([path.join(prefix, 'bin')]);
  const v = await run('baton', ['-v'], { env: onPath, cwd: d.dir });
  t.equal(v.stdout.trim(), `baton ${version}`, `baton -v from the installed package: ${v.stderr}`);

  const adminPort = await freePort();
  d.writeConfig({ body: BODY, adminPort });
  const check = await run('baton', ['-t', '-c', d.configFile], { env: onPath, cwd: d.dir });
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /^configuration ok/);

  const installedBin = path.join(prefix, 'bin/baton');
  await d.start({ body: BODY, adminPort, bin: installedBin, env: onPath });
  const port = await d.port();
  t.equal((await request(port, '/')).body, 'installed\n', 'the installed daemon serves');
  t.equal((await d.status()).version, version);
  const old = d.masterPid;

  const second = await release(path.join(d.dir, 'out'), ['--version', NEXT]);
  await installGlobal(prefix, second);
  const up = await run('baton', ['upgrade', '-c', d.configFile], { env: onPath, cwd: d.dir });
  t.equal(up.code, 0, `baton upgrade: ${up.stdout}${up.stderr}`);
  t.match(up.stdout, /upgrade done: master \d+/);
  const status = await waitFor('/status from the new master', 30_000, async () => {
    const s = await d.status().catch(() => undefined);
    return s && s.pid !== old ? s : undefined;
  });
  t.equal(status.version, NEXT, 'the new master runs the newly installed version');
  t.equal((await request(port, '/')).body, 'installed\n', 'the same listener serves after the upgrade');
});

t.test('in a checkout, npm link puts baton on the PATH', async (t) => {
  const d = new Daemon(t, 'baton-link-');
  const prefix = path.join(d.dir, 'prefix');
  // --ignore-scripts: `prepare` would rebuild dist/ under the other tests running from it.
  const link = await run('npm', ['link', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], { env: { ...env(), npm_config_prefix: prefix } });
  t.equal(link.code, 0, link.stderr);
  const v = await run('baton', ['-v'], { env: env([path.join(prefix, 'bin')]), cwd: d.dir });
  t.equal(v.stdout.trim(), `baton ${version}`, v.stderr);
});
