import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../lib/config/load.js';
import { Daemon, freePort, ROOT } from '../helpers/daemon.js';

// No Docker engine here: the image cannot be built. What can be checked is checked: the healthcheck script against
// a real daemon, the container config, and the Dockerfile's instructions against the build context.

const HEALTHCHECK = path.join(ROOT, 'conf/healthcheck');

function check(port: number, p: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [HEALTHCHECK, '127.0.0.1', String(port), p], { timeout: 30_000 }, (err, _stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }));
  });
}

t.test('the HEALTHCHECK script passes on a 2xx from /healthz, and fails on an error status or a closed port', async (t) => {
  const d = await new Daemon(t).start({
    body: `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /healthz
    return: { status: 200, body: "ok\\n" }
  - path: /
    return: { status: 503, body: "down\\n" }
`,
  });
  const port = await d.port();
  t.same(await check(port, '/healthz'), { code: 0, stderr: '' });
  const down = await check(port, '/elsewhere');
  t.equal(down.code, 1);
  t.match(down.stderr, `unhealthy: 127.0.0.1:${port}/elsewhere answered HTTP/1.1 503`);
  const closed = await check(await freePort(), '/healthz');
  t.equal(closed.code, 1);
  t.match(closed.stderr, /unhealthy: nothing accepts connections/);
});

t.test('the container config binds the admin listener to loopback and answers /healthz on the main listener', async (t) => {
  const result = loadConfig(path.join(ROOT, 'conf/baton.container.yaml'));
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  const c = result.config;
  t.equal(c.admin?.listen.host, '127.0.0.1', 'POST /reload is not reachable from the network');
  t.same(c.listeners.map((l) => l.address.key), ['0.0.0.0:8080']);
  t.match(c.routes.find((r) => r.path === '/healthz'), { return: { status: 200 } });
  t.same([c.log.error.kind, c.log.access?.kind], ['stderr', 'stdout'], 'logs to the runtime');
});

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(file: string): { op: string; args: string }[] {
  const text = fs.readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op!.toUpperCase(), args: rest.join(' ') };
  });
}

t.test('Dockerfile: Node 24 at an exact version, a light HEALTHCHECK, and COPY sources that the build context has', async (t) => {
  const ops = instructions(path.join(ROOT, 'Dockerfile'));
  const known = new Set(['FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'EXPOSE', 'STOPSIGNAL', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD', 'ARG', 'LABEL']);
  t.same(ops.filter((i) => !known.has(i.op)).map((i) => i.op), [], 'only known instructions');
  const froms = ops.filter((i) => i.op === 'FROM').map((i) => i.args.split(' ')[0]!);
  t.ok(froms.length >= 1);
  for (const image of froms) t.match(image, /^node:24\.\d+\.\d+-[a-z]+-slim$/, `${image}: Node 24 at an exact version`);
  const health = ops.find((i) => i.op === 'HEALTHCHECK')!.args;
  t.notMatch(health, /\bnode\b/, 'no Node process per check');
  t.match(health, /healthcheck/);
  t.match(health, /\/healthz/);

  const ignored = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const entry of ['node_modules', '.git', 'dist', 'test']) t.ok(ignored.includes(entry), `.dockerignore leaves out ${entry}`);
  for (const copy of ops.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
    const sources = copy.args.split(' ').slice(0, -1);
    for (const s of sources) {
      t.ok(fs.existsSync(path.join(ROOT, s)), `COPY ${s}: in the repository`);
      t.notOk(ignored.some((e) => s === e || s.startsWith(`${e}/`)), `COPY ${s}: not left out by .dockerignore`);
    }
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  t.ok(pkg.files.includes('conf/') && fs.existsSync(HEALTHCHECK), 'the healthcheck script ships in the package the image installs');
});
