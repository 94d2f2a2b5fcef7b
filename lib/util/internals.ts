/**
 * @module Every Node.js or library internal baton relies on, in one place. Each one is an undocumented field,
 * symbol or function that a Node (or pino, sonic-boom) release may rename or remove; `missingInternals()` probes
 * them all, and the master and every worker call it at start-up so that such a release fails loudly (exit 4,
 * naming what is missing) instead of misbehaving under load. Nothing outside this file touches them.
 *
 * Checked on Node 20.20, 22.23 and 24.22 with pino 10.4 / sonic-boom 4.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type zlib from 'node:zlib';
import pino from 'pino';
import type { Client, Pool } from 'undici';

// ---- net._createServerHandle ---------------------------------------------------------------------------------

/** Node's raw TCP handle (tcp_wrap), as `net._createServerHandle` returns it. */
export interface RawHandle {
  readonly fd: number;
  close(cb?: () => void): void;
  getsockname(out: Record<string, unknown>): number;
}

interface NetInternals {
  _createServerHandle?(address: string | null, port: number | null, addressType: number | null, fd?: number, flags?: number): RawHandle | number;
}

/**
 * Bind (or wrap an existing fd) without listening: the master owns sockets it never accepts on. Returns the
 * handle, or a negative errno. (`net.Server#listen` would also listen, and accept in the master.)
 */
export function createServerHandle(address: string | null, port: number | null, addressType: number | null, fd?: number, flags?: number): RawHandle | number {
  return (net as unknown as NetInternals)._createServerHandle!(address, port, addressType, fd, flags);
}

// ---- undici: the two dispatchers alone ------------------------------------------------------------------------

/**
 * undici's Pool and Client classes, loaded from their own files: the package index loads every API (fetch,
 * WebSocket, cache, mock agents, EventSource: 110 modules) where a worker needs these two (22 modules): about
 * 8 MiB less RSS per worker and 140 ms less start-up (measured on Node 20). Loaded on first use, so that the
 * master, which proxies nothing, never loads them. undici 7 has no "exports" map: these paths are public files.
 */
export interface UndiciDispatchers {
  readonly Pool: typeof Pool;
  readonly Client: typeof Client;
}

const requireHere = createRequire(import.meta.url);
const UNDICI_POOL = 'undici/lib/dispatcher/pool.js';
const UNDICI_CLIENT = 'undici/lib/dispatcher/client.js';
let dispatchers: UndiciDispatchers | null = null;

export function undiciDispatchers(): UndiciDispatchers {
  dispatchers ??= { Pool: requireHere(UNDICI_POOL) as typeof Pool, Client: requireHere(UNDICI_CLIENT) as typeof Client };
  return dispatchers;
}

/** Without loading them (the master probes too): both files resolve, in an undici 7. */
function probeUndici(): string[] {
  const missing: string[] = [];
  for (const f of [UNDICI_POOL, UNDICI_CLIENT]) {
    try {
      requireHere.resolve(f);
    } catch {
      missing.push(`undici: ${f}`);
    }
  }
  const version = (requireHere('undici/package.json') as { version?: string }).version ?? '';
  if (!version.startsWith('7.')) missing.push(`undici: ${version ? `version ${version}` : "no version"} is not undici 7 (lib/dispatcher/{pool,client}.js)`);
  return missing;
}

// ---- pino and sonic-boom --------------------------------------------------------------------------------------

/** The destination behind a pino logger, written to directly by the access log's hot path. */
export function loggerStream(log: pino.Logger): { write(s: string): void } {
  return (log as unknown as Record<symbol, { write(s: string): void }>)[pino.symbols.streamSym]!;
}

/** The SonicBoom fields the log sinks read and set (not part of its typed API). */
export interface SinkInternals {
  fd: number;
  minLength: number;
  _len: number;
  _writing: boolean;
  file: string | null;
  destroyed: boolean;
}

export function sinkInternals(sink: ReturnType<typeof pino.destination>): SinkInternals {
  return sink as unknown as SinkInternals;
}

// ---- node:http -------------------------------------------------------------------------------------------------

/** The response that holds an HTTP/1 connection now (`socket._httpMessage`), if any. */
export function currentResponse(socket: net.Socket | Duplex): http.ServerResponse | null {
  return (socket as { _httpMessage?: http.ServerResponse | null })._httpMessage ?? null;
}

/** Node marks the response of the last request `maxRequestsPerSocket` allows (it will say Connection: close). */
export function maxRequestsReached(res: http.ServerResponse): boolean {
  return (res as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached === true;
}

let kConnections: symbol | undefined;

interface ConnectionsList {
  idle(): Array<{ socket?: unknown }>;
}

/** The HTTP/1 parser Node attached to a socket (`socket.parser`), and the http.Server it parses for (`socket.server`). */
function parserOf(socket: net.Socket): { parser: object | null; server: http.Server | null } {
  const s = socket as { parser?: object | null; server?: http.Server | null };
  return { parser: s.parser ?? null, server: s.server ?? null };
}

/**
 * The connection's HTTP/1 parser exists and has not begun a message since its last one completed: no request
 * byte is inside it. Node's own list of a server's connections says so (`server[kConnections].idle()`, which
 * `closeIdleConnections()` uses): a parser leaves the idle list on llhttp's message begin, i.e. at the first
 * byte of a request line, and comes back on message complete. The list is asked once per server per tick.
 */
export function parserIdle(socket: net.Socket): boolean {
  const { parser, server } = parserOf(socket);
  if (parser === null || server === null) return false;
  let idle = idleCache.get(server);
  if (idle === undefined) {
    kConnections ??= Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
    const list = kConnections === undefined ? undefined : (server as unknown as Record<symbol, ConnectionsList | undefined>)[kConnections];
    if (list === undefined) return false;
    idle = new Set(list.idle());
    idleCache.set(server, idle);
    if (idleCache.size === 1) queueMicrotask(() => idleCache.clear());
  }
  return idle.has(parser);
}

/** The connection's HTTP/1 parser holds part of a request: it read bytes and has begun a message not yet complete. */
export function parserBegun(socket: net.Socket): boolean {
  return socket.bytesRead > 0 && parserOf(socket).parser !== null && !parserIdle(socket);
}

/** Parser states change only in I/O callbacks, never within one synchronous run: one idle() per server per run. */
const idleCache = new Map<object, Set<object>>();

/** What Node keeps on an HTTP/1 parser that reads a socket's handle from C++ (`parser.consume(handle)`). */
interface ConsumingParser {
  _consumed?: boolean;
  unconsume?: () => void;
}

/**
 * Take a connection away from the HTTP/1.1 server whose parser stopped at an HTTP/2 connection preface (clientError
 * HPE_PAUSED_H2_UPGRADE): a new socket over the same libuv handle, and the old socket destroyed without its
 * descriptor, so that Node's HTTP server forgets it as it forgets any closed connection (its close listeners run,
 * its parser is freed and leaves the header-timeout list). The parser lets go of the handle first
 * (`parser.unconsume()`, as Node does itself before an 'upgrade'): the handle's reads then go to the new socket.
 * The listening server's count of connections (`_server`, which its `maxConnections`, the worker's descriptor
 * budget, is checked against) moves with it: the connection is still open, on the new socket.
 * Null, and nothing changed, when the parser does not read the handle itself (it was given bytes in JavaScript).
 */
export function takeFromHttp1(socket: net.Socket): net.Socket | null {
  const s = socket as unknown as { parser?: ConsumingParser | null; _handle?: object | null; _server?: net.Server | null };
  const parser = s.parser;
  const handle = s._handle;
  if (!parser || !handle || parser._consumed !== true || typeof parser.unconsume !== 'function') return null;
  parser.unconsume();
  parser._consumed = false;
  const server = s._server ?? null;
  // The old socket's destroy would count the connection as closed.
  s._server = null;
  s._handle = null;
  socket.destroy();
  const taken = new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
  (taken as unknown as { _server: net.Server | null })._server = server;
  return taken;
}

// ---- libuv stream handles (net.Socket._handle) --------------------------------------------------------------------

/** A connected TCP socket's libuv handle, as net.Socket keeps it (`_handle`). */
export interface StreamHandle {
  readonly fd: number;
  reading: boolean;
  readStart(): number;
  readStop(): number;
  close(cb?: () => void): void;
}

const kHeld = Symbol('baton.readsHeld');
type Held = StreamHandle & { [kHeld]?: true };

/** The socket's handle, when it is a libuv stream that can stop reading; null otherwise (closed, TLS-wrapped...). */
export function streamHandle(socket: net.Socket): StreamHandle | null {
  const h = (socket as unknown as { _handle?: StreamHandle | null })._handle ?? null;
  return h !== null && typeof h.readStop === 'function' && typeof h.readStart === 'function' && typeof h.fd === 'number' ? h : null;
}

/** A socket with reads held: nothing more is read from the kernel until `releaseReads`. */
function readStartHeld(this: Held): number {
  return 0;
}

/**
 * Stop reading the socket in this process, and keep it stopped whatever the stream machinery asks (a flowing
 * stream calls readStart again each time its buffer empties): bytes that arrive stay in the kernel, where they
 * move with the descriptor. Returns false when the socket has no such handle.
 */
export function holdReads(socket: net.Socket): boolean {
  const h = streamHandle(socket) as Held | null;
  if (h === null) return false;
  if (h[kHeld]) return true;
  h.readStop();
  h.reading = false;
  h[kHeld] = true;
  // An own property shadows the prototype's method for this handle only.
  (h as { readStart: () => number }).readStart = readStartHeld;
  return true;
}

/** Undo `holdReads`: the socket reads again (a paused stream stops again by itself once its buffer is full). */
export function releaseReads(socket: net.Socket): void {
  const h = streamHandle(socket) as Held | null;
  if (h === null || !h[kHeld]) return;
  delete (h as { readStart?: unknown }).readStart;
  delete h[kHeld];
  h.reading = true;
  h.readStart();
}

/** A socket over a handle received from another process (`child.send(msg, handle)` of a raw handle). */
export function socketOnHandle(handle: unknown): net.Socket {
  return new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
}

/** Close a raw handle received over IPC and not wrapped in a socket (this process's copy of the descriptor only). */
export function closeRawHandle(handle: unknown): void {
  const h = handle as { close?: (cb?: () => void) => void } | null | undefined;
  if (h && typeof h.close === 'function') {
    try {
      h.close();
    } catch {
      /* already closed */
    }
  }
}

// ---- node:http2 ------------------------------------------------------------------------------------------------

let kSessionSocket: symbol | undefined;

/**
 * The socket object a session runs on (a JSStreamSocket when the session was given a plain Duplex, such as an
 * H2Port). Node keeps it under a symbol described 'socket'.
 */
export function sessionSocket(session: http2.Http2Session): (object & { stream?: unknown }) | undefined {
  kSessionSocket ??= Object.getOwnPropertySymbols(session).find((s) => s.description === 'socket');
  if (kSessionSocket === undefined) return undefined;
  return (session as unknown as Record<symbol, (object & { stream?: unknown }) | undefined>)[kSessionSocket];
}

/** The Duplex a JSStreamSocket wraps (`.stream`): for a session on an H2Port, that H2Port. */
export function wrappedStream(socket: object & { stream?: unknown }): unknown {
  return socket.stream;
}

/**
 * Give a socket that has no native peer (a JSStreamSocket) the client's address: net.Socket's `remoteAddress`,
 * `remotePort` and `remoteFamily` getters read `_peername` when the handle cannot tell. One small object per
 * connection, where getters would cost a closure each.
 */
export function setPeer(socket: object, address: string | undefined, port: number | undefined, family: string | undefined): void {
  (socket as { _peername?: object })._peername = { address, port, family };
}

// ---- node:tls -------------------------------------------------------------------------------------------------

/**
 * The connection a server-side TLS socket runs over (`_parent`): where a listener's front recorded the client
 * (a PROXY header's address, or `unix:`); the TLS socket itself would ask the kernel for the TCP peer.
 */
export function tlsParent(socket: tls.TLSSocket): net.Socket | undefined {
  const parent = (socket as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : undefined;
}

// ---- process warnings -------------------------------------------------------------------------------------------

/** Node prints process warnings to stderr through a 'warning' listener of its own, named so. */
const WARNING_PRINTER = 'onWarning';
const noWarningsFlag = () => process.execArgv.includes('--no-warnings') || /(^|\s)--no-warnings(\s|$)/.test(process.env.NODE_OPTIONS ?? '');
/** Seen when this module loads, before anything removed it. */
const printerAtLoad = noWarningsFlag() || process.listeners('warning').some((l) => l.name === WARNING_PRINTER);

/** Stop Node printing process warnings raw to stderr (the 'warning' event still fires for our own listener). */
export function removeWarningPrinter(): void {
  for (const l of process.listeners('warning')) if (l.name === WARNING_PRINTER) process.off('warning', l);
}

// ---- what a process has loaded (the start-up trace) ------------------------------------------------------------

/**
 * The built-in modules this process has loaded so far (`process.moduleLoadList`, undocumented: entries
 * 'NativeModule http2'...), by name. Diagnostics only (scripts/reload-timing --trace): no probe, and an empty
 * list if a release drops it.
 */
export function loadedBuiltins(): string[] {
  const list = (process as { moduleLoadList?: unknown }).moduleLoadList;
  if (!Array.isArray(list)) return [];
  return list.filter((m): m is string => typeof m === 'string' && m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
}

/**
 * The packages of which CommonJS has loaded code from node_modules (undici, http-proxy: not in the bundle); a
 * package.json read alone (the undici probe reads its version) does not count.
 */
export function loadedPackages(): string[] {
  const names = new Set<string>();
  for (const file of Object.keys(requireHere.cache)) {
    if (!/\.[cm]?js$/.test(file)) continue;
    const m = /[/\\]node_modules[/\\]((?:@[^/\\]+[/\\])?[^/\\]+)[/\\]/.exec(file.slice(file.lastIndexOf('node_modules') - 1));
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

// ---- node:zlib: compression streams driven synchronously ------------------------------------------------

/** A compression stream's binding (`_handle`), written to synchronously, and the counts each write leaves (`_writeState`). */
export interface CompressEngine {
  /**
   * Compress `input[inOff, inOff + inLen)` to its end (Z_FINISH, BROTLI_OPERATION_FINISH) into `out` from its
   * start; then `state[0]` is the space left in `out` (0: call again with the input left) and `state[1]` the input
   * not yet taken. Throws when the library failed; the engine is then unusable.
   */
  finish(input: Buffer, inOff: number, inLen: number, out: Buffer): void;
  readonly state: Uint32Array;
  /** Ready for the next body, as a new stream with the same settings would be. */
  reset(): void;
}

interface ZlibBinding {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  reset(): void;
  init(...args: unknown[]): unknown;
}

/**
 * A stream used only through its binding, as `zlib.gzipSync` and `zlib.brotliCompressSync` use one, but kept for
 * the next body: the binding's `writeSync` (what their loop calls), then `again` to start over. A failure makes
 * Node destroy the stream (`errored`), which `finish` reports.
 */
function engineOf(stream: zlib.Gzip | zlib.BrotliCompress, finishFlag: number, again: (handle: ZlibBinding, state: Uint32Array) => void): CompressEngine {
  // Node emits a failure as 'error' after the call that failed; finish() has thrown it by then.
  stream.on('error', () => {});
  const inner = stream as unknown as { _handle?: ZlibBinding | null; _writeState?: Uint32Array };
  const handle = inner._handle;
  const state = inner._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || typeof handle.reset !== 'function' || typeof handle.init !== 'function' || !(state instanceof Uint32Array)) {
    stream.destroy();
    throw new Error('zlib: the binding of a stream (_handle.writeSync, reset, init) and its _writeState');
  }
  return {
    state,
    finish(input, inOff, inLen, out) {
      if (stream.destroyed) throw stream.errored ?? new Error('compression stream closed');
      handle.writeSync(finishFlag, input, inOff, inLen, out, 0, out.length);
      if (stream.destroyed) throw stream.errored ?? new Error('compression failed');
    },
    reset() {
      again(handle, state);
      if (stream.destroyed) throw stream.errored ?? new Error('compression stream could not start over');
    },
  };
}

/** gzip: the binding's `reset` (what the documented `zlib.Gzip#reset()` calls) is deflateReset, which keeps level,
 * window and memory. */
export function gzipEngine(options: zlib.ZlibOptions): CompressEngine {
  const z = process.getBuiltinModule('node:zlib');
  return engineOf(z.createGzip(options), z.constants.Z_FINISH, (handle) => handle.reset());
}

/**
 * Brotli: the binding's `reset` forgets the stream's parameters (quality 11 after it: 25 times the CPU, on Node
 * 20, 22 and 24), so the binding is initialised again as the BrotliCompress constructor does it,
 * `init(parameters, writeState, callback)`: the parameters as a Uint32Array indexed by BROTLI_PARAM_*, -1 where
 * unset. The callback is for asynchronous writes, which an engine never makes.
 */
export function brotliEngine(params: Readonly<Record<number, number>>): CompressEngine {
  const z = process.getBuiltinModule('node:zlib');
  const keys = Object.keys(params).map(Number);
  const values = new Uint32Array(Math.max(0, ...keys) + 1).fill(0xffffffff);
  for (const k of keys) values[k] = params[k]!;
  return engineOf(z.createBrotliCompress({ params }), z.constants.BROTLI_OPERATION_FINISH, (handle, state) => handle.init(values, state, () => {}));
}

/** Two bodies through one engine of each kind, started over between them: each exactly what `zlib.gzipSync` and
 * `zlib.brotliCompressSync` make of it. */
function probeCompression(): string[] {
  const z = process.getBuiltinModule('node:zlib');
  const gzip = { level: 5, windowBits: 12, memLevel: 4 };
  const brotli = { [z.constants.BROTLI_PARAM_QUALITY]: 5, [z.constants.BROTLI_PARAM_LGWIN]: 12 };
  const kinds: [string, () => CompressEngine, (b: Buffer) => Buffer][] = [
    ['gzip', () => gzipEngine(gzip), (b) => z.gzipSync(b, gzip)],
    ['brotli', () => brotliEngine(brotli), (b) => z.brotliCompressSync(b, { params: brotli })],
  ];
  const missing: string[] = [];
  for (const [name, make, once] of kinds) {
    let engine: CompressEngine;
    try {
      engine = make();
    } catch (err) {
      missing.push((err as Error).message);
      continue;
    }
    const out = Buffer.alloc(1024);
    for (const body of [Buffer.from('baton '.repeat(500)), Buffer.from('reset '.repeat(300))]) {
      engine.finish(body, 0, body.length, out);
      const made = out.subarray(0, out.length - engine.state[0]!);
      const left = engine.state[1];
      engine.reset();
      if (left !== 0 || !made.equals(once(body))) {
        missing.push(`zlib: a ${name} binding started over compresses as a new one`);
        break;
      }
    }
  }
  return missing;
}

// ---- the start-up probe ----------------------------------------------------------------------------------------

function probeSession(): string[] {
  const missing: string[] = [];
  const server = process.getBuiltinModule('node:http2').createServer();
  let session: http2.ServerHttp2Session | undefined;
  server.on('session', (s) => { session = s; });
  const duplex = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  server.emit('connection', duplex);
  if (session === undefined) return ['http2: a server session from a Duplex'];
  session.on('error', () => {});
  const socket = sessionSocket(session);
  if (socket === undefined) missing.push("http2: the session's socket symbol");
  else if (wrappedStream(socket) !== duplex) missing.push('http2: JSStreamSocket.stream');
  else {
    setPeer(socket, '192.0.2.1', 1, 'IPv4');
    if ((socket as net.Socket).remoteAddress !== '192.0.2.1') missing.push('net: Socket._peername');
  }
  session.destroy();
  duplex.destroy();
  return missing;
}

function probeHttp(): string[] {
  const missing: string[] = [];
  const socket = new net.Socket();
  const res = new http.ServerResponse(new http.IncomingMessage(socket));
  if (!('maxRequestsOnConnectionReached' in res)) missing.push('http: ServerResponse.maxRequestsOnConnectionReached');
  res.assignSocket(socket);
  if (currentResponse(socket) !== res) missing.push('http: socket._httpMessage');
  res.detachSocket(socket);
  socket.destroy();
  return missing;
}

function probeParserIdle(): string[] {
  const server = http.createServer();
  // Node builds the connections list when the server starts listening.
  server.emit('listening');
  const missing: string[] = [];
  const sym = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  const list = sym === undefined ? undefined : (server as unknown as Record<symbol, ConnectionsList | undefined>)[sym];
  if (list === undefined || typeof list.idle !== 'function') missing.push("http: the server's connections list (idle())");
  server.close(() => {});
  const socket = new net.Socket();
  if (!('_handle' in socket)) missing.push('net: Socket._handle');
  socket.destroy();
  return missing;
}

/** `takeFromHttp1`: the parser Node gives a connection (`socket.parser`) can let go of a handle it reads; a socket
 * knows the server that counts it (`_server`). */
function probeTakeover(): string[] {
  const server = http.createServer();
  const socket = new net.Socket();
  server.emit('connection', socket);
  const parser = (socket as unknown as { parser?: ConsumingParser | null }).parser;
  const missing: string[] = [];
  if (!parser) missing.push('http: socket.parser');
  else if (!('_consumed' in parser) || typeof parser.unconsume !== 'function') missing.push('http: parser._consumed and parser.unconsume()');
  if (!('_server' in socket)) missing.push('net: Socket._server');
  socket.destroy();
  return missing;
}

function probeTls(): string[] {
  const raw = new net.Socket();
  const socket = new (process.getBuiltinModule('node:tls').TLSSocket)(raw, { isServer: true });
  const missing = tlsParent(socket) === raw ? [] : ['tls: TLSSocket._parent'];
  socket.destroy();
  raw.destroy();
  return missing;
}

function probeSink(): string[] {
  const sink = pino.destination({ dest: '/dev/null', sync: true });
  const i = sinkInternals(sink) as unknown as Record<string, unknown>;
  const missing = (['fd', 'minLength', '_len', '_writing', 'file', 'destroyed'] as const).filter((f) => !(f in i)).map((f) => `sonic-boom: ${f}`);
  sink.destroy();
  return missing;
}

/** What a process's code paths use besides HTTP/1.1: the internals of those only are probed. */
export interface InternalsInUse {
  /**
   * An HTTP/2 server (h2c or TLS listeners), or a front that sets the client's address (PROXY protocol, unix):
   * the session's socket symbol, JSStreamSocket, `_peername` (probed on an HTTP/2 session); the HTTP/1 parser's
   * hold on a handle, which an h2c connection is taken from (`takeFromHttp1`).
   */
  readonly http2: boolean;
  /** A TLS listener: `TLSSocket._parent`. */
  readonly tls: boolean;
  /** Response compression (top-level `compression`): compression streams' bindings, driven synchronously. */
  readonly compression: boolean;
}

/**
 * Names of the internals this Node and these libraries no longer have; empty when all are there. The master probes
 * all of them; a worker those its config uses (the HTTP/2, TLS and compression probes load node:http2, node:tls
 * and node:zlib, which a worker whose config has none of them does not load before it is ready).
 */
export function missingInternals(uses: InternalsInUse = { http2: true, tls: true, compression: true }): string[] {
  const missing: string[] = [];
  if (typeof (net as unknown as NetInternals)._createServerHandle !== 'function') missing.push('net._createServerHandle');
  if (typeof pino.symbols?.streamSym !== 'symbol') missing.push('pino.symbols.streamSym');
  if (!printerAtLoad) missing.push(`process: Node's warning printer (a 'warning' listener named ${WARNING_PRINTER})`);
  const probes = [probeHttp, probeParserIdle, probeSink, probeUndici];
  if (uses.http2) probes.push(probeSession, probeTakeover);
  if (uses.tls) probes.push(probeTls);
  if (uses.compression) probes.push(probeCompression);
  for (const probe of probes) {
    try {
      missing.push(...probe());
    } catch (err) {
      missing.push(`${probe.name}: ${(err as Error).message}`);
    }
  }
  return missing;
}
