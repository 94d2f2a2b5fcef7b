/** @module The connection edge: the client a PROXY header or a unix listener names, written into the socket. */
import net from 'node:net';
import t from 'tap';
import { adoptPeer, ConnectionEdge, peerOf } from '../../../lib/worker/proxy-protocol.js';

/** A connected pair on loopback: the server side, the client side. */
async function pair(t: { teardown(fn: () => void): void }): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const socket = await accepted;
  t.teardown(() => { client.destroy(); socket.destroy(); server.close(); });
  return [socket, client];
}

const listener = (proxyProtocol: boolean, family: 4 | 'unix' = 4) => ({ proxyProtocol, address: { key: 'k', family } });

t.test('a listener without PROXY protocol on TCP has no edge: it costs nothing', async (t) => {
  t.equal(ConnectionEdge.for(listener(false), 1000, undefined), null);
});

t.test('the header\'s client becomes the socket\'s remote address; the bytes after it are put back', async (t) => {
  const edge = ConnectionEdge.for(listener(true), 5000, undefined)!;
  const [socket, client] = await pair(t);
  const next = new Promise<void>((r) => edge.accept(socket, r));
  client.write('PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n');
  await next;
  t.same([socket.remoteAddress, socket.remotePort, socket.remoteFamily], ['203.0.113.7', 51000, 'IPv4']);
  t.same(peerOf(socket), { address: '203.0.113.7', port: 51000, family: 'IPv4' }, 'what a hand-off carries');
  const rest = await new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
  t.equal(rest, 'GET / HTTP/1.1\r\n');
});

t.test('a connection handed over with its client is not asked for a header again', async (t) => {
  const edge = ConnectionEdge.for(listener(true), 5000, undefined)!;
  const [socket] = await pair(t);
  adoptPeer(socket, { address: '198.51.100.9', port: 4000, family: 'IPv4' });
  let called = false;
  edge.accept(socket, () => { called = true; });
  t.ok(called, 'handed on at once');
  t.equal(socket.remoteAddress, '198.51.100.9');
  const [plain] = await pair(t);
  t.equal(peerOf(plain), null, 'a socket the edge never saw: its TCP peer is its client, nothing to carry');
});

t.test('a unix listener names its clients unix:', async (t) => {
  const edge = ConnectionEdge.for(listener(false, 'unix'), 5000, undefined)!;
  const [socket] = await pair(t);
  edge.accept(socket, () => {});
  t.equal(socket.remoteAddress, 'unix:');
});
