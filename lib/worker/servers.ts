/**
 * @module One server per listener, on the listening fd inherited from the master: plain HTTP/1.1, or HTTPS
 * with SNI. Servers only accept and parse; the request handler decides everything else.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type net from 'node:net';
import type { ListenerConfig, TlsConfig } from '../config/types.js';
import { DrainAwareResponse } from './drain.js';

/** Client keep-alive idle timeout (Node closes at this + 1 s and advertises it in Keep-Alive). */
const KEEPALIVE_TIMEOUT_MS = 5000;
const HEADERS_TIMEOUT_MS = 60_000;

export interface Handlers {
  request(req: http.IncomingMessage, res: http.ServerResponse): void;
  upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void;
  clientError(err: Error & { code?: string }, socket: net.Socket): void;
}

function sniCallback(conf: TlsConfig): ((servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void) | undefined {
  if (conf.sni.length === 0) return undefined;
  const exact = new Map<string, tls.SecureContext>();
  const wild: [string, tls.SecureContext][] = [];
  for (const entry of conf.sni) {
    const ctx = tls.createSecureContext({ cert: entry.cert, key: entry.key, minVersion: 'TLSv1.2' });
    for (const name of entry.names) {
      if (name.startsWith('*.')) wild.push([name.slice(1), ctx]);
      else exact.set(name, ctx);
    }
  }
  // Longest suffix first, so *.api.example.com wins over *.example.com.
  wild.sort((a, b) => b[0].length - a[0].length);
  return (servername, cb) => {
    const name = servername.toLowerCase();
    const hit = exact.get(name) ?? wild.find(([suffix]) => name.endsWith(suffix) && name.length > suffix.length)?.[1];
    cb(null, hit);
  };
}

export function createServer(listener: ListenerConfig, handlers: Handlers): http.Server {
  const options: http.ServerOptions = {
    ServerResponse: DrainAwareResponse as unknown as typeof http.ServerResponse,
    keepAliveTimeout: KEEPALIVE_TIMEOUT_MS,
    headersTimeout: HEADERS_TIMEOUT_MS,
    // Large uploads may take long; inactivity is bounded by the upstream idle timeout instead.
    requestTimeout: 0,
  };
  let server: http.Server;
  if (listener.tls) {
    const t = listener.tls;
    const SNICallback = sniCallback(t);
    server = https.createServer({ ...options, cert: t.cert, key: t.key, minVersion: 'TLSv1.2', ...(SNICallback ? { SNICallback } : {}) });
  } else {
    server = http.createServer(options);
  }
  server.on('request', handlers.request);
  server.on('upgrade', handlers.upgrade);
  server.on('clientError', handlers.clientError);
  return server;
}
