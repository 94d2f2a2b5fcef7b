/**
 * @module The admin listener, served by one master at a time: GET /status (JSON; 503 while nothing serves),
 * GET /metrics (Prometheus text), POST /reload (a synchronous reload: the answer comes once the new generation
 * serves, or with the errors).
 */
import http from 'node:http';
import type { Address } from '../config/types.js';
import type { ListenerRegistry, RawHandle } from './listeners.js';
import { removeIfSame } from './socket-file.js';
import type { ReloadOutcome } from './state.js';
import type { StatusReply } from './status.js';

export interface AdminView {
  status(): StatusReply;
  metrics(): string;
  reload(): Promise<ReloadOutcome>;
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function createAdminServer(view: AdminView): http.Server {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/status' && (req.method === 'GET' || req.method === 'HEAD')) {
      const status = view.status();
      send(res, status.code, 'application/json', JSON.stringify(status.body, null, 2) + '\n');
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
function listenOnHandle(server: http.Server, handle: RawHandle): Promise<void> {
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

/** Where the admin listener serves, for its log line. */
export interface AdminBound {
  readonly url: string;
  readonly address: string;
  readonly socket?: string;
}

/**
 * The admin socket as the master serves it: opened from the registry (so that it is handed to a new master like
 * any listener), released when a new master takes over, opened again after a rollback.
 */
export class AdminListener {
  #server: http.Server | null = null;
  #opening: Promise<AdminBound | null> | null = null;
  #key: string | null = null;

  constructor(private readonly registry: ListenerRegistry, private readonly view: AdminView) {}

  /** The registry key of the socket while this master serves it. */
  get key(): string | null {
    return this.#server ? this.#key : null;
  }

  /** Serve on `listen`; resolves with where (null when served already). Rejects with the reason. */
  open(listen: Address): Promise<AdminBound | null> {
    if (this.#server) return Promise.resolve(null);
    this.#opening ??= this.#open(listen).finally(() => { this.#opening = null; });
    return this.#opening;
  }

  async #open(listen: Address): Promise<AdminBound> {
    const problems = this.registry.ensure([{ address: listen }]);
    if (problems.length) throw new Error(`admin listener: ${problems.join('; ')}`);
    const entry = this.registry.get(listen.key)!;
    const server = createAdminServer(this.view);
    await listenOnHandle(server, entry.handle);
    this.#server = server;
    this.#key = listen.key;
    // A unix socket: curl --unix-socket PATH http://localhost/status.
    if (listen.family === 'unix') return { url: 'http://localhost/status', address: entry.key, socket: entry.bound };
    return { url: `http://${entry.bound}/status`, address: entry.bound };
  }

  /**
   * Stop answering: requests in progress finish, idle keep-alive clients reconnect (to whoever serves now).
   * `removeFile`: this master is the last one to use the socket (a stop, no upgrade under way), so a unix socket's
   * file goes with it. The server serves a copy of the registry's handle (net.Server.listen takes a Pipe by its
   * fd), whose close never unlinks the path: the file is removed here, as the registry does for listeners.
   */
  release(removeFile = false): void {
    if (!this.#server || !this.#key) return;
    const file = this.registry.get(this.#key)?.file;
    this.registry.forget(this.#key);
    this.#server.close();
    this.#server.closeIdleConnections();
    this.#server = null;
    if (removeFile && file) removeIfSame(file.path, file.identity);
  }
}
