/** @module The master's listening sockets, with fake handles at the socket boundary (and one real bind). */
import t from 'tap';
import { ListenerRegistry, type BindHandle } from '../../../lib/master/listeners.js';
import { FakeHandle } from './fixture.js';

const addr = (port: number, host = '127.0.0.1') => ({ key: `${host}:${port}`, host, port, family: 4 as const });
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
