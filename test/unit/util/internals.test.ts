import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { currentResponse, maxRequestsReached, missingInternals } from '../../../lib/util/internals.js';

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
