/** @module The master's listening sockets, with fake handles at the socket boundary (and one real bind). */
import t from 'tap';
import { ListenerRegistry, type BindHandle } from '../../../lib/master/listeners.js';
import { FakeHandle } from './fixture.js';

const addr = (port: number, host = '127.0.0.1') => ({ address: { key: `${host}:${port}`, host, port, family: 4 as const } });
const EADDRINUSE = -98;
const EACCES = -13;

function registry(script: (host: string | null, port: number | null, fd?: number) => FakeHandle | number): { reg: ListenerRegistry; binds: string[] } {
  const binds: string[] = [];
  const bind: BindHandle = (host, port, _family, fd) => {
    binds.push(fd !== undefined ? `fd ${fd}` : `${host}:${port}`);
    return script(host, port, fd);
  };
  return { reg: new ListenerRegistry(bind), binds };
}

t.test('a socket is bound once per address and kept across calls: every generation shares it', async (t) => {
  const { reg, binds } = registry((host, port) => new FakeHandle(10, host!, port!));
  t.same(reg.ensure([addr(8080)]), []);
  t.same(reg.ensure([addr(8080), addr(8081)]), []);
  t.same(binds, ['127.0.0.1:8080', '127.0.0.1:8081']);
  t.equal(reg.get('127.0.0.1:8080')!.bound, '127.0.0.1:8080');
});

t.test('a bind that fails names the address, the errno and what it means', async (t) => {
  const { reg } = registry((_h, port) => (port === 80 ? EACCES : EADDRINUSE));
  t.same(reg.ensure([addr(80), addr(8080)]), [
    'cannot listen on 127.0.0.1:80: EACCES (permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE)',
    'cannot listen on 127.0.0.1:8080: EADDRINUSE (address already in use)',
  ]);
  t.same(reg.entries(), []);
});

t.test('a port taken by another process, which libuv reports only at listen(), is caught from the bound port', async (t) => {
  const handles: FakeHandle[] = [];
  // libuv defers EADDRINUSE: the handle comes back bound to port 0.
  const { reg } = registry((host) => { const h = new FakeHandle(11, host!, 0); handles.push(h); return h; });
  t.same(reg.ensure([addr(8080)]), ['cannot listen on 127.0.0.1:8080: EADDRINUSE (address already in use)']);
  t.equal(handles[0]!.closed, true, 'the half-made handle is closed');
});

t.test('inherited and activated sockets are adopted by fd; one that cannot be is reported, others go on', async (t) => {
  const { reg, binds } = registry((_h, _p, fd) => (fd === 5 ? -9 : new FakeHandle(fd!, '127.0.0.1', 9000 + fd!)));
  t.same(reg.adopt({ '127.0.0.1:0': 4, '127.0.0.1:7': 5 }), ['cannot adopt inherited socket 127.0.0.1:7 (fd 5): EBADF']);
  t.same(binds, ['fd 4', 'fd 5']);
  t.equal(reg.get('127.0.0.1:0')!.bound, '127.0.0.1:9004', 'the bound address is read from the socket');
  t.same(reg.adoptActivated([6]), []);
  t.ok(reg.get('127.0.0.1:9006'), 'an activated socket is keyed by the address it is bound to');
});

t.test('closeExcept closes what no one needs and says which; forget leaves the handle open', async (t) => {
  const made: FakeHandle[] = [];
  const { reg } = registry((host, port) => { const h = new FakeHandle(20 + made.length, host!, port!); made.push(h); return h; });
  reg.ensure([addr(1), addr(2), addr(3)]);
  reg.forget('127.0.0.1:3');
  t.same(reg.closeExcept(new Set(['127.0.0.1:1'])), ['127.0.0.1:2']);
  t.same(made.map((h) => h.closed), [false, true, false]);
  reg.closeAll();
  t.same(made.map((h) => h.closed), [true, true, false], 'a forgotten handle is its owner\'s to close');
});

t.test('a real socket on 127.0.0.1:0 gets the port the OS picked', async (t) => {
  const reg = new ListenerRegistry();
  t.same(reg.ensure([addr(0)]), []);
  t.match(reg.get('127.0.0.1:0')!.bound, /^127\.0\.0\.1:[1-9]\d*$/);
  reg.closeAll();
});

// ---- unix sockets, real ones in a temp dir ------------------------------------------------------------------------

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-unix-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const unix = (file: string, mode: number | null = null) => ({ address: { key: `unix:${file}`, host: file, port: -1, family: 'unix' as const }, mode });

t.test('a unix socket file is created with its mode, kept while held, and removed when the last master lets it go', async (t) => {
  const file = path.join(tempDir(t), 'http.sock');
  const reg = new ListenerRegistry();
  t.same(reg.ensure([unix(file, 0o660)]), []);
  t.ok(fs.statSync(file).isSocket());
  t.equal(fs.statSync(file).mode & 0o777, 0o660);
  t.equal(reg.get(`unix:${file}`)!.bound, file);
  t.same(reg.ensure([unix(file, 0o600)]), [], 'a reload may change the mode of the socket it keeps');
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.same(reg.closeExcept(new Set(), false), [`unix:${file}`]);
  t.ok(fs.existsSync(file), 'shared with another master (an upgrade): the file stays');
  const again = new ListenerRegistry();
  t.not(again.ensure([unix(file)]).length, 0, 'and the socket is still bound (its handle kept open)');
});

t.test('a unix socket inherited by fd is removed by its last master, unless the file is not that socket any more', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'http.sock');
  const first = new ListenerRegistry();
  first.ensure([unix(file)]);
  const heir = new ListenerRegistry();
  t.same(heir.adopt({ [`unix:${file}`]: first.get(`unix:${file}`)!.handle.fd }), []);
  t.equal(heir.get(`unix:${file}`)!.bound, file);
  heir.closeAll(true);
  t.notOk(fs.existsSync(file), 'the heir, last user, removes the file');
  const other = path.join(dir, 'other.sock');
  const second = new ListenerRegistry();
  second.ensure([unix(other)]);
  const heir2 = new ListenerRegistry();
  heir2.adopt({ [`unix:${other}`]: second.get(`unix:${other}`)!.handle.fd });
  fs.unlinkSync(other);
  fs.writeFileSync(other, 'someone else\'s file');
  heir2.closeAll(true);
  t.equal(fs.readFileSync(other, 'utf8'), 'someone else\'s file', 'a file created since at that path is left alone');
});

t.test('a stale socket file (its process gone) is replaced; a file that is not a socket, or a bound socket, is not', async (t) => {
  const dir = tempDir(t);
  const stale = path.join(dir, 'stale.sock');
  // A socket bound by a process that exits without removing it: what a crash leaves.
  const child = await import('node:child_process');
  child.execFileSync(process.execPath, ['-e', `require('net')._createServerHandle(${JSON.stringify(stale)}, -1, -1); process.exit(0)`]);
  t.ok(fs.statSync(stale).isSocket(), 'a stale socket file is there');
  const reg = new ListenerRegistry();
  const notices: string[] = [];
  reg.onNotice = (m) => notices.push(m);
  t.same(reg.ensure([unix(stale)]), []);
  t.match(notices, [/removed a stale socket file .*stale\.sock/]);

  const plain = path.join(dir, 'plain.sock');
  fs.writeFileSync(plain, 'data');
  t.same(reg.ensure([unix(plain)]), [`cannot listen on unix:${plain}: ${plain} exists and is not a socket`]);
  t.equal(fs.readFileSync(plain, 'utf8'), 'data');

  const live = path.join(dir, 'live.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(live, r));
  t.teardown(() => server.close());
  t.same(reg.ensure([unix(live)]), [`cannot listen on unix:${live}: ${live} is in use by another process`]);
  reg.closeAll();
  t.notOk(fs.existsSync(stale), 'closed by its only master: removed');
});

t.test('a unix socket in a directory that does not exist fails with the errno', async (t) => {
  const reg = new ListenerRegistry();
  const file = path.join(tempDir(t), 'missing', 'http.sock');
  t.same(reg.ensure([unix(file)]), [`cannot listen on unix:${file}: EACCES (the directory must exist and be writable by the master)`]);
});

t.test('a unix socket activated by systemd is keyed by its path, and its file is systemd\'s: never removed', async (t) => {
  const file = path.join(tempDir(t), 'activated.sock');
  const creator = new ListenerRegistry();
  creator.ensure([unix(file)]);
  const reg = new ListenerRegistry();
  t.same(reg.adoptActivated([creator.get(`unix:${file}`)!.handle.fd]), []);
  t.equal(reg.get(`unix:${file}`)?.bound, file);
  reg.closeAll(true);
  t.ok(fs.existsSync(file), 'the socket unit keeps its file');
});
