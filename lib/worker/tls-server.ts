/**
 * @module The TLS front of a listener: Mozilla "intermediate" settings, certificates chosen by SNI, ALPN offering
 * h2 and http/1.1, a handshake bounded by `header_timeout`, and no client-initiated renegotiation (TLS 1.2: each
 * one costs the server a full handshake; nginx refuses them too).
 */
import type tls from 'node:tls';
import type { TlsConfig } from '../config/types.js';

/** Mozilla "intermediate": forward secrecy and AEAD only, TLS 1.2+ (TLS 1.3 suites are always on). */
const CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * OpenSSL answers a renegotiation ClientHello with a no_renegotiation alert before any key exchange; Node, told
 * to refuse renegotiation on the socket, reports the attempt ('error'), and the connection is closed.
 */
const noRenegotiation = (): number => process.getBuiltinModule('node:crypto').constants.SSL_OP_NO_RENEGOTIATION;
/** node:tls, loaded by the first TLS listener: a worker without one never loads it before it is ready. */
const tlsModule = (): typeof tls => process.getBuiltinModule('node:tls');

type SniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;

function sniCallback(conf: TlsConfig): SniCallback | undefined {
  if (conf.sni.length === 0) return undefined;
  const exact = new Map<string, tls.SecureContext>();
  const wild: [string, tls.SecureContext][] = [];
  for (const entry of conf.sni) {
    const ctx = tlsModule().createSecureContext({ cert: entry.cert, key: entry.key, minVersion: 'TLSv1.2', ciphers: CIPHERS, secureOptions: noRenegotiation() });
    for (const name of entry.names) {
      if (name.startsWith('*.')) wild.push([name.slice(1), ctx]);
      else exact.set(name, ctx);
    }
  }
  // Longest suffix first, so *.api.example.com wins over *.example.com. Unknown names get the default (undefined).
  wild.sort((a, b) => b[0].length - a[0].length);
  return (servername, cb) => {
    const name = servername.toLowerCase();
    cb(null, exact.get(name) ?? wild.find(([suffix]) => name.endsWith(suffix) && name.length > suffix.length)?.[1]);
  };
}

function onSocketError(this: tls.TLSSocket, err: Error & { code?: string }): void {
  if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') this.destroy();
}

function onSecure(socket: tls.TLSSocket): void {
  socket.disableRenegotiation();
  socket.on('error', onSocketError);
}

function onClientError(_err: Error, socket: tls.TLSSocket): void {
  socket.destroy();
}

/** A TLS server; its 'secureConnection' sockets go to the HTTP/1.1 or HTTP/2 server by ALPN (servers.ts). */
export function createTlsServer(conf: TlsConfig, handshakeTimeout: number): tls.Server {
  const SNICallback = sniCallback(conf);
  const server = tlsModule().createServer({
    cert: conf.cert,
    key: conf.key,
    minVersion: 'TLSv1.2',
    ciphers: CIPHERS,
    honorCipherOrder: true,
    secureOptions: noRenegotiation(),
    ALPNProtocols: ['h2', 'http/1.1'],
    ...(SNICallback ? { SNICallback } : {}),
    handshakeTimeout,
    noDelay: true,
  });
  server.on('secureConnection', onSecure);
  server.on('tlsClientError', onClientError);
  return server;
}
