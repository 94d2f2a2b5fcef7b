/**
 * @module The admin listener, served by the master: GET /status (JSON), GET /metrics (Prometheus text),
 * POST /reload (a synchronous reload: the answer comes once the new generation serves, or with the errors).
 */
import http from 'node:http';
import type { RawHandle } from './listeners.js';
import type { ReloadOutcome } from './state.js';

export interface AdminView {
  status(): unknown;
  metrics(): string;
  reload(): Promise<ReloadOutcome>;
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

export function createAdminServer(view: AdminView): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/status' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, 'application/json', JSON.stringify(view.status(), null, 2) + '\n');
    } else if (path === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', view.metrics());
    } else if (path === '/reload' && req.method === 'POST') {
      req.resume();
      view.reload().then(
        (outcome) => send(res, outcome.ok ? 200 : 409, 'application/json', JSON.stringify(outcome) + '\n'),
        (err: Error) => send(res, 500, 'application/json', JSON.stringify({ ok: false, errors: [err.message] }) + '\n'),
      );
    } else if (path === '/status' || path === '/metrics' || path === '/reload') {
      res.setHeader('allow', path === '/reload' ? 'POST' : 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    } else {
      send(res, 404, 'text/plain; charset=utf-8', 'not found: try /status or /metrics\n');
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}

/** Serve on a socket the registry bound (so it can be handed to a new master like any listener). */
export function listenOnHandle(server: http.Server, handle: RawHandle): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(handle as unknown as net_Handle, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

// net.Server.listen accepts a raw handle; the public typings only know `{ fd }` or servers.
type net_Handle = { fd: number };
