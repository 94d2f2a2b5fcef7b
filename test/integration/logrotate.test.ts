import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, Daemon, ROOT, waitFor } from '../helpers/daemon.js';
import { request } from '../helpers/http.js';

const BODY = `
listeners:
  - listen: 127.0.0.1:0
routes:
  - path: /
    return: { status: 200, body: "hi\\n" }
`;

/**
 * conf/logrotate as shipped, pointed at a temp dir: its paths replaced, and its `su baton baton` dropped (no baton
 * user here; the test's own user owns the temp dir). The postrotate command is the shipped one.
 */
function shippedLogrotate(d: Daemon): string {
  const conf = fs.readFileSync(path.join(ROOT, 'conf/logrotate'), 'utf8')
    .replaceAll('/var/log/baton', d.dir)
    .replaceAll('/run/baton/baton.pid', d.pidFile)
    .replaceAll('/usr/local/bin/baton', `${process.execPath} ${BIN}`)
    .replace(/^\s*su baton baton\s*$/m, '');
  const file = path.join(d.dir, 'logrotate.conf');
  fs.writeFileSync(file, conf, { mode: 0o644 });
  return file;
}

t.test('logrotate with the shipped config reopens the logs even with a broken config on disk: new lines go to the new file', async (t) => {
  const d = await new Daemon(t).start({ body: BODY, workers: 2 });
  const port = await d.port();
  await request(port, '/', { headers: { 'x-request-id': 'before-rotation' } });
  await waitFor('the first access line', 15_000, () => (d.readLog(d.accessLog).includes('before-rotation') ? true : undefined));
  // An operator is half-way through an edit when the nightly rotation runs.
  fs.writeFileSync(d.configFile, 'listeners: [ { listen: \n');
  const conf = shippedLogrotate(d);
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile('logrotate', ['-f', '-s', path.join(d.dir, 'logrotate.state'), conf], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }));
  });
  t.equal(r.code, 0, `logrotate and its postrotate succeed: ${r.out}`);
  t.ok(fs.existsSync(`${d.accessLog}.1`), 'access.log rotated to access.log.1');
  t.ok(fs.existsSync(`${d.errorLog}.1`), 'error.log rotated to error.log.1');
  let n = 0;
  await waitFor('a request logged in the new access.log', 30_000, async () => {
    const id = `after-rotation-${n++}`;
    await request(port, '/', { headers: { 'x-request-id': id } });
    return d.readLog(d.accessLog).includes('after-rotation') ? true : undefined;
  });
  await waitFor('the error log reopened (a new error.log)', 30_000, () => (fs.existsSync(d.errorLog) ? true : undefined));
  t.match(d.readLog(`${d.accessLog}.1`), /before-rotation/, 'the old lines stay in the rotated file');
});
