import fs from 'node:fs';
import t from 'tap';
import { Daemon, waitFor } from '../helpers/daemon.js';

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200 }
`;

t.test('the suite runs on the Node that CI asked for', { skip: process.env.BATON_CI_EXPECT_NODE ? false : 'outside .ci/run' }, async (t) => {
  t.equal(process.version, process.env.BATON_CI_EXPECT_NODE);
});

t.test('the daemon\'s master and workers run on the Node that runs the tests, and say so in /metrics', async (t) => {
  const d = await new Daemon(t).start({ body: BODY, workers: 1 });
  const self = fs.realpathSync(process.execPath);
  const workers = await waitFor('the worker', 30_000, () => { const w = d.workerPids(); return w.length === 1 ? w : undefined; });
  for (const pid of [d.masterPid, ...workers]) t.equal(fs.realpathSync(`/proc/${pid}/exe`), self, `process ${pid} runs ${self}`);
  const admin = await d.adminAddress();
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`baton_build_info\\{[^}]*node="${process.version.replaceAll('.', '\\.')}"`));
});
