/**
 * @module Worker entry: receive the config snapshot and listening fds from the master, serve, obey drain and
 * reopen, push stats, give and take connections in hand-offs. Workers take no signals from operators; the master
 * drives them over IPC. After an uncaught exception a worker's state may be corrupt (in-flight counts, drain
 * counts): it stops accepting, drains what it has and exits, and the master starts its replacement at once.
 */
import type net from 'node:net';
import type http from 'node:http';
import { createLogs, type Logs } from '../log/logger.js';
import { isMasterToWorker, type MasterToWorker, type WorkerStats, type WorkerToMaster } from '../ipc/messages.js';
import { recorder } from '../metrics/recorder.js';
import { ProcessSampler } from '../metrics/process.js';
import { logWarnings } from '../log/warnings.js';
import { createRequestHandler, type RequestHandler } from './handler.js';
import { createServer } from './servers.js';
import { Drainer } from './drain.js';
import { HandoffSender, type Channel, type Trace } from './handoff.js';
import { HandoffReceiver } from './handoff-in.js';
import { loadedBuiltins, loadedPackages, missingInternals } from '../util/internals.js';
import { leases } from './rate-limit.js';
import { traceRole, traceStep } from '../util/startup-trace.js';
import { QuietCollector, exposedGc } from './quiet-gc.js';
import { mallocTrim } from './malloc-trim.js';
import { installAsyncBind } from './async-bind.js';

traceRole('worker');
traceStep('worker modules loaded');
installAsyncBind();

const STATS_INTERVAL_MS = 1000;

let logs: Logs | null = null;
let handler: RequestHandler | null = null;
let shutdownTimeout = 30_000;
const drainer = new Drainer();
const servers: net.Server[] = [];
/** The server of each cleartext listener, by address key: where connections handed in are served. */
const cleartext = new Map<string, net.Server>();
/** drain.handoff of this worker's config: whether it gives its connections away when it drains. */
let handoffOn = false;
let keepaliveMs = 5000;

const channel: Channel = {
  get connected() {
    return Boolean(process.send) && process.connected;
  },
  send(msg, handle, cb) {
    process.send!(msg, handle as net.Socket, undefined, cb);
  },
};
/** The hand-off's debug trace of each step, and its warnings (a descriptor that could not be sent, with the code). */
const handoffTrace: Trace = (fields, msg) => logs?.error.debug(fields, msg);
const handoffWarn: Trace = (fields, msg) => logs?.error.warn(fields, msg);
const sender = new HandoffSender(channel);
sender.trace = handoffTrace;
sender.warn = handoffWarn;
const receiver = new HandoffReceiver({
  server: (key) => cleartext.get(key) ?? null,
  draining: () => drainer.draining || handler === null,
  reply: (msg, cb) => {
    if (channel.connected) process.send!(msg, undefined, undefined, cb);
    else cb(new Error('no channel to the master'));
  },
  handedIn: (socket) => drainer.markHandedIn(socket, keepaliveMs),
  adoptTunnel: (state, client, upstream, server) => {
    drainer.adopt(client, server);
    handler!.tunnels.adopt(state, client, upstream);
  },
  trace: handoffTrace,
  warn: handoffWarn,
});
const sampler = new ProcessSampler();
const gc = exposedGc();
/**
 * The collection a worker makes when it goes quiet after work, then glibc's trim of what the collection and the load
 * freed (malloc-trim.ts), with a debug line of what they gave back.
 */
const quiet = gc
  ? new QuietCollector(() => {
      const before = process.memoryUsage.rss();
      const started = performance.now();
      gc();
      const trimmed = mallocTrim()?.() ?? null;
      const ms = Math.round(performance.now() - started);
      logs?.error.debug({ rssBefore: before, rssAfter: process.memoryUsage.rss(), ms, trimmed }, 'quiet: collected garbage');
    })
  : null;
/** Non-zero once the worker retires after an uncaught exception. */
let exitCode = 0;

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
    process: sampler.sample(),
    health: handler?.health() ?? [],
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

/** `handoff`: the master says a serving worker may take this one's connections (see drain.handoff). */
function drain(handoff = false): void {
  if (drainer.draining) return;
  const moving = handoff && handoffOn && channel.connected;
  logs?.error.info({ handoff: moving }, 'draining');
  if (moving) drainer.useMover(sender);
  const deadline = setTimeout(() => {
    logs?.error.warn({ connections: drainer.connections() }, 'shutdown_timeout reached: closing what is left');
    handler?.closeTunnels();
    drainer.closeAll();
    finish(exitCode);
  }, shutdownTimeout);
  deadline.unref();
  drainer.start(() => {
    clearTimeout(deadline);
    if (moving) logs?.error.info({ handed_over: sender.tally.moved, stayed: sender.tally.stayed }, 'drained: connections handed over to serving workers');
    finish(exitCode);
  });
  if (moving && handler) {
    handler.tunnels.moveAll(
      {
        move: async (client, upstream, state, turn) => {
          const key = sender.keyOf(drainer.listenerOf(client));
          return key !== null && (await sender.offer('websocket', key, [upstream, client], state, undefined, turn)).outcome !== 'failed';
        },
        turn: (kind) => sender.turn(kind),
        stayed: () => sender.stayed('websocket', 'unflushed'),
      },
      (client) => sender.keyOf(drainer.listenerOf(client)),
    );
  }
}

/** For the start-up trace: how much this worker has loaded, and which of what a config may not need. */
function loaded(): Record<string, unknown> {
  const builtins = loadedBuiltins();
  return { builtins: builtins.length, optional: builtins.filter((m) => OPTIONAL_BUILTINS.has(m)), packages: loadedPackages() };
}
/** Built-ins that only some configs need (HTTP/2, TLS, https upstreams, compression, request ids' randomness). */
const OPTIONAL_BUILTINS = new Set(['http2', 'tls', 'https', 'zlib', 'crypto']);

async function start(msg: Extract<MasterToWorker, { type: 'start' }>): Promise<void> {
  traceStep('start message received');
  const { config, generation } = msg;
  shutdownTimeout = config.shutdownTimeout;
  handoffOn = config.drain.handoff;
  keepaliveMs = config.limits.keepaliveTimeout;
  logs = createLogs(config.log, { role: 'worker', generation });
  const l = logs;
  logWarnings(() => l.error);
  // Only what its config uses: the HTTP/2, TLS and compression probes would load node:http2, node:tls and node:zlib
  // (the master probed all).
  const uses = {
    http2: config.listeners.some((x) => x.h2c || x.tls !== null || x.proxyProtocol || x.address.family === 'unix'),
    tls: config.listeners.some((x) => x.tls !== null),
    compression: config.compression !== null,
  };
  const missing = missingInternals(uses);
  if (missing.length) throw new Error(`this Node.js release (${process.version}) lacks internals baton relies on: ${missing.join(', ')}`);
  traceStep('logs open');
  const h = createRequestHandler(config, l, { generation });
  handler = h;
  traceStep('request handler built');
  recorder.configure(config.routes);
  const handlers = {
    request: (req: http.IncomingMessage, res: http.ServerResponse) => h.handle(req, res),
    upgrade: (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => h.upgrade(req, socket, head),
    clientError: (err: Error & { code?: string }, socket: net.Socket) => {
      // A connection being handed over is not ours to answer on (Node's header timeout of a connection that never
      // sent a byte): a 408 and its FIN would reach the client through the receiver's copy.
      if (!drainer.moving(socket)) h.clientError(err, socket);
    },
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
    traceStep('listening', { listener: fd.key });
    if (!listener.tls) {
      cleartext.set(listener.address.key, server);
      sender.listen(server, listener.address.key);
    }
  }
  setInterval(() => {
    send({ type: 'stats', stats: stats() });
    quiet?.tick(performance.eventLoopUtilization().active, Date.now());
  }, STATS_INTERVAL_MS).unref();
  l.error.debug({ listeners: msg.listeners.map((x) => x.key) }, 'worker ready');
  // Traced before the send: once sent, the master may record its generation ready before this line runs.
  traceStep('ready sending', loaded);
  send({ type: 'ready' });
  // What could wait until after 'ready' (the upstream pools) is made now, before the first request when none has come yet.
  setImmediate(() => {
    if (drainer.draining) return;
    h.warm();
    traceStep('warm', loaded);
  });
}

process.on('message', (msg: unknown, handle: unknown) => {
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
      drain(msg.handoff === true);
      return;
    case 'reopen':
      logs?.reopen();
      return;
    case 'handoff':
      receiver.take(msg, handle);
      return;
    case 'handoff-result':
      sender.settle(msg);
      return;
    case 'rate-grant':
      leases.receive(msg.seq, msg.grants);
      return;
  }
});

// The master is gone (killed, or crashed): leave gracefully rather than serve unsupervised forever.
process.on('disconnect', () => {
  sender.disconnected();
  drain();
});
// Operators signal the master; a terminal's Ctrl-C or a group kill must not cut in-flight requests here.
for (const sig of ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR2', 'SIGWINCH', 'SIGUSR1'] as const) process.on(sig, () => {});
process.on('SIGTERM', () => {
  drainer.closeAll();
  finish(0);
});
/**
 * One request's bug must not fail the others in flight, nor may the worker go on with counters it can no longer
 * trust: it tells the master (which starts a replacement now), stops accepting, drains and exits non-zero.
 */
function retire(err: unknown, what: string): void {
  if (!logs || !handler) {
    // Not serving yet: a start-up failure like any other.
    process.stderr.write(`baton worker ${process.pid}: ${what}: ${(err as Error)?.stack ?? String(err)}\n`);
    const msg: WorkerToMaster = { type: 'fatal', message: `${what}: ${(err as Error)?.message ?? String(err)}` };
    if (process.send && process.connected) process.send(msg, () => process.exit(1));
    else process.exit(1);
    setTimeout(() => process.exit(1), 500).unref();
    return;
  }
  logs.error.error({ err }, `${what}: the worker stops accepting, drains and exits; the master replaces it`);
  if (exitCode !== 0) return;
  exitCode = 1;
  send({ type: 'retiring', reason: `${what}: ${(err as Error)?.message ?? String(err)}` });
  // Its own generation's other workers (and its replacement) may take its connections.
  drain(true);
}

process.on('uncaughtException', (err) => retire(err, 'uncaught exception'));
// Node's own default makes an unhandled rejection an uncaught exception: the same rule.
process.on('unhandledRejection', (err) => retire(err, 'unhandled rejection'));
