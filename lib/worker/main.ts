/**
 * @module Worker entry: receive the config snapshot and listening fds from the master, serve, obey drain and
 * reopen. Workers take no signals from operators; the master drives them over IPC.
 */
import type net from 'node:net';
import type http from 'node:http';
import { createLogs, type Logs } from '../log/logger.js';
import { isMasterToWorker, type MasterToWorker, type WorkerStats, type WorkerToMaster } from '../ipc/messages.js';
import { recorder } from '../metrics/recorder.js';
import { createRequestHandler, type RequestHandler } from './handler.js';
import { createServer } from './servers.js';
import { Drainer } from './drain.js';
import { missingInternals } from '../util/internals.js';

const STATS_INTERVAL_MS = 1000;

let logs: Logs | null = null;
let handler: RequestHandler | null = null;
let shutdownTimeout = 30_000;
const drainer = new Drainer();
const servers: net.Server[] = [];

function send(msg: WorkerToMaster): void {
  if (process.send && process.connected) process.send(msg, () => {});
}

function stats(): WorkerStats {
  const connections = drainer.connections();
  const websocket = Math.min(connections, handler?.openTunnels() ?? 0);
  const h2 = Math.min(connections - websocket, drainer.sessions());
  return {
    connections,
    requests: drainer.requests,
    metrics: recorder.snapshot({ http1: connections - websocket - h2, h2, websocket }, drainer.draining),
  };
}

function finish(code: number): void {
  let exiting = false;
  const done = () => {
    if (exiting) return;
    exiting = true;
    logs?.flush();
    // A last push, so that the master's totals include what this worker served since the previous one.
    if (process.send && process.connected) process.send({ type: 'stats', stats: stats() } satisfies WorkerToMaster, () => process.exit(code));
    else process.exit(code);
    setTimeout(() => process.exit(code), 500).unref();
  };
  if (handler) handler.close().then(done, done);
  else done();
  setTimeout(done, 2000).unref();
}

function drain(): void {
  if (drainer.draining) return;
  logs?.error.info('draining');
  const deadline = setTimeout(() => {
    logs?.error.warn({ connections: drainer.connections() }, 'shutdown_timeout reached: closing what is left');
    handler?.closeTunnels();
    drainer.closeAll();
    finish(0);
  }, shutdownTimeout);
  deadline.unref();
  drainer.start(() => {
    clearTimeout(deadline);
    finish(0);
  });
}

async function start(msg: Extract<MasterToWorker, { type: 'start' }>): Promise<void> {
  const { config, generation } = msg;
  shutdownTimeout = config.shutdownTimeout;
  logs = createLogs(config.log, { role: 'worker', generation });
  const l = logs;
  const missing = missingInternals();
  if (missing.length) throw new Error(`this Node.js release (${process.version}) lacks internals baton relies on: ${missing.join(', ')}`);
  const h = createRequestHandler(config, l, { generation });
  handler = h;
  recorder.configure(config.routes);
  const handlers = {
    request: (req: http.IncomingMessage, res: http.ServerResponse) => h.handle(req, res),
    upgrade: (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      drainer.markUpgraded(socket);
      h.upgrade(req, socket, head);
    },
    clientError: (err: Error & { code?: string }, socket: net.Socket) => h.clientError(err, socket),
  };
  for (const fd of msg.listeners) {
    const listener = config.listeners.find((x) => x.address.key === fd.key);
    if (!listener) continue;
    const server = createServer(listener, handlers, drainer, config.limits, l.error);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd: fd.fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => l.error.error({ err }, 'server error'));
    servers.push(server);
  }
  setInterval(() => send({ type: 'stats', stats: stats() }), STATS_INTERVAL_MS).unref();
  l.error.debug({ listeners: msg.listeners.map((x) => x.key) }, 'worker ready');
  send({ type: 'ready' });
}

process.on('message', (msg: unknown) => {
  if (!isMasterToWorker(msg)) return;
  switch (msg.type) {
    case 'start':
      start(msg).catch((err: Error) => {
        send({ type: 'fatal', message: err.message });
        logs?.error.error({ err }, 'worker cannot start');
        finish(1);
      });
      return;
    case 'drain':
      drain();
      return;
    case 'reopen':
      logs?.reopen();
      return;
  }
});

// The master is gone (killed, or crashed): leave gracefully rather than serve unsupervised forever.
process.on('disconnect', drain);
// Operators signal the master; a terminal's Ctrl-C or a group kill must not cut in-flight requests here.
for (const sig of ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2', 'SIGWINCH', 'SIGUSR1'] as const) process.on(sig, () => {});
process.on('SIGTERM', () => {
  drainer.closeAll();
  finish(0);
});
process.on('uncaughtException', (err) => {
  // One request's bug must not take the worker's other requests down with it.
  if (logs) logs.error.error({ err }, 'uncaught exception (worker carries on)');
  else process.stderr.write(`baton worker ${process.pid}: ${err.stack}\n`);
});
process.on('unhandledRejection', (err) => logs?.error.error({ err }, 'unhandled rejection (worker carries on)'));
