import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { createRequire } from 'node:module';
import { currentResponse, maxRequestsReached, missingInternals, takeFromHttp1, undiciDispatchers } from '../../../lib/util/internals.js';

t.test('every Node and library internal baton relies on is there on this Node release', async (t) => {
  t.same(missingInternals(), [], `node ${process.version}`);
});

t.test('the accessors read what Node sets: the response holding a socket, and the max-requests mark', async (t) => {
  const socket = new net.Socket();
  const res = new http.ServerResponse(new http.IncomingMessage(socket));
  t.equal(currentResponse(socket), null, 'no response before one is assigned');
  res.assignSocket(socket);
  t.equal(currentResponse(socket), res);
  t.equal(maxRequestsReached(res), false);
  res.detachSocket(socket);
  socket.destroy();
});

t.test("the Pool and Client loaded from undici's own files are the classes its index exports, loaded without the index", async (t) => {
  const require = createRequire(import.meta.url);
  const indexPath = require.resolve('undici');
  t.notOk(require.cache[indexPath], 'the undici index is not loaded by loading the dispatchers');
  const { Pool, Client } = undiciDispatchers();
  t.notOk(require.cache[indexPath], 'still not loaded after undiciDispatchers()');
  const undici = require('undici') as typeof import('undici');
  t.equal(Pool, undici.Pool);
  t.equal(Client, undici.Client);
});

t.test('a connection taken from the HTTP/1.1 server at the HTTP/2 preface keeps its descriptor, its bytes, its peer and its place in the server count; the HTTP/1.1 parser lets it go', async (t) => {
  const server = http.createServer(() => t.fail('no request'));
  let taken: net.Socket | null = null;
  let oldClosed = false;
  let old: net.Socket | null = null;
  const got = new Promise<string>((resolve) => {
    server.on('clientError', (err: Error & { code?: string; rawPacket?: Buffer; bytesParsed?: number }, socket: net.Socket) => {
      t.equal(err.code, 'HPE_PAUSED_H2_UPGRADE');
      old = socket;
      socket.on('close', () => { oldClosed = true; });
      taken = takeFromHttp1(socket);
      if (taken === null) return resolve('not taken');
      let text = err.rawPacket!.subarray(err.bytesParsed).toString();
      taken.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.endsWith('!')) resolve(text);
      });
      taken.write('taken');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => client.destroy());
  let fromServer = '';
  client.on('data', (d: Buffer) => { fromServer += d.toString(); });
  await new Promise<void>((r) => client.once('connect', r));
  client.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nfirst;');
  await new Promise((r) => setTimeout(r, 20));
  client.write('later!');
  t.equal(await got, 'first;later!', 'the rest of the first read, then what came after, reach the new socket');
  t.ok(oldClosed, "the HTTP/1.1 server's socket closed");
  t.equal((old as unknown as { parser: unknown }).parser, null, 'its HTTP/1.1 parser freed');
  const count = () => new Promise((r) => server.getConnections((_e, n) => r(n)));
  t.equal(await count(), 1, 'the listening server still counts the connection (its maxConnections budget), once');
  t.equal(taken!.remoteAddress, '127.0.0.1');
  t.equal(taken!.remotePort, client.localPort);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(fromServer, 'taken', 'the new socket writes on the same connection, and nothing else was written');
  t.notOk(client.destroyed || client.readableEnded, 'the connection stays open');
  taken!.destroy();
  await new Promise((r) => taken!.once('close', r));
  t.equal(await count(), 0, 'and no longer once the new socket closed');
});

t.test('a connection whose parser was given its bytes in JavaScript is not taken, and stays as it was', async (t) => {
  const server = http.createServer();
  const socket = new net.Socket();
  server.emit('connection', socket);
  t.equal(takeFromHttp1(socket), null);
  t.notOk(socket.destroyed);
  socket.destroy();
});
