import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { createRequire } from 'node:module';
import { currentResponse, maxRequestsReached, missingInternals, undiciDispatchers } from '../../../lib/util/internals.js';

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
