/** Reloads that a WINCH interrupts, queued ones included: every POST /reload gets its answer. */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { Daemon, ROOT, waitFor } from '../helpers/daemon.js';

const body = (text: string) => `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "${text}" }
`;

t.test('reload, reload, WINCH: both POST /reload requests are answered', async (t) => {
  // Workers of every generation take 1.5 s to start, so the WINCH lands while the first reload is still starting.
  const hook = pathToFileURL(path.join(ROOT, 'test/fixtures/hooks/slow-worker.mjs')).href;
  const d = await new Daemon(t).start({ body: body('one'), env: { NODE_OPTIONS: `--import=${hook}` } });
  const admin = await d.adminAddress();
  await waitFor('a ready worker', 30_000, async () => ((await d.status()).generation === 1 ? true : undefined));
  const post = () => fetch(`http://${admin}/reload`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: await r.json() as { ok: boolean; errors?: string[] } }));
  const first = post();
  await d.waitForLine('the first reload starting its generation', (l) => l.msg === 'configuration valid, starting a new generation');
  const second = post();
  await d.waitForLine('the second reload queued', (l) => l.msg === 'reload queued behind the one in progress');
  d.signal('SIGWINCH');
  let timer: NodeJS.Timeout | undefined;
  const answers = await Promise.race([
    Promise.all([first, second]),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('a POST /reload was never answered')), 60_000); }),
  ]).finally(() => clearTimeout(timer));
  t.same(answers.map((a) => a.body), [{ ok: false, errors: ['interrupted by WINCH'] }, { ok: false, errors: ['interrupted by WINCH'] }]);
  t.same(answers.map((a) => a.status), [409, 409]);
});
