/** @module The server each listener kind gets (servers.ts): how it accepts its connections. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import type { ListenerConfig, TlsConfig } from '../../../lib/config/types.js';
import { Drainer } from '../../../lib/worker/drain.js';
import { createServer, type Handlers } from '../../../lib/worker/servers.js';
import { makeCerts } from '../../helpers/certs.js';

const handlers: Handlers = {
  request: (_req, res) => res.end(),
  upgrade: (_req, socket) => socket.destroy(),
  clientError: (_err, socket) => socket.destroy(),
};

function listener(over: Partial<ListenerConfig>): ListenerConfig {
  return { address: { key: '127.0.0.1:0', host: '127.0.0.1', port: 0, family: 4 }, h2c: false, tls: null, proxyProtocol: false, mode: null, owner: null, ...over };
}

t.test('every cleartext and TLS listener kind accepts with TCP_NODELAY, as Node\'s HTTP server does', async (t) => {
  const dir = t.testdir();
  makeCerts(dir);
  const certFile = path.join(dir, 'site.crt');
  const keyFile = path.join(dir, 'site.key');
  const tls: TlsConfig = { certFile, keyFile, cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), sni: [] };
  // A front (PROXY protocol, h2c behind it) or a TLS server accepts for the HTTP/1.1 server; Node sets the option
  // at the accept only on a server created with `noDelay`. Without it, a response written in pieces waits for the
  // client's delayed ACK: 40 ms per streamed response, on every one of these kinds but the first.
  const kinds: Array<[string, Partial<ListenerConfig>]> = [
    ['HTTP/1.1', {}],
    ['h2c', { h2c: true }],
    ['TLS', { tls }],
    ['PROXY protocol', { proxyProtocol: true }],
    ['h2c with PROXY protocol', { h2c: true, proxyProtocol: true }],
    ['TLS with PROXY protocol', { tls, proxyProtocol: true }],
  ];
  for (const [name, over] of kinds) {
    const server = createServer(listener(over), handlers, new Drainer());
    t.ok(server instanceof net.Server, `${name}: a net.Server`);
    t.equal((server as net.Server & { noDelay?: boolean }).noDelay, true, `${name}: TCP_NODELAY at the accept`);
  }
});
