/**
 * @module How one target is reached: TCP, TLS or a unix socket, as connect functions of our own (HTTP/1.1,
 * h1-conn.ts; HTTP/2, h2-pool.ts) and as options for undici's connector (the health checks). TLS settings are
 * compiled once per upstream: a secure context holding the extra CA and the client certificate, so that no
 * connection parses certificates again.
 */
import type https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import type { TargetConfig, UpstreamConfig } from '../../config/types.js';
import { NO_H2, coded } from '../errors.js';

/** The HTTP/2 ALPN id; a target that does not pick it cannot serve an `http2` upstream. */
export const ALPN_H2 = 'h2';

/** What every connection to one target is opened with. */
export interface TargetEndpoint {
  readonly kind: 'tcp' | 'tls' | 'unix';
  readonly host: string;
  readonly port: number;
  readonly socketPath: string | null;
  readonly tls: tls.ConnectionOptions | null;
}

/**
 * The TLS options of an upstream's https targets: Node's CA store (plus `tls.ca`, which adds to it rather than
 * replacing it), the client certificate, the SNI and verification name, and `verify`.
 */
export function tlsOptions(up: UpstreamConfig, host: string): tls.ConnectionOptions {
  const conf = up.tls;
  const opts: tls.ConnectionOptions = { rejectUnauthorized: conf === null || conf.verify };
  const serverName = conf?.serverName ?? (net.isIP(host) === 0 ? host : null);
  // An IP literal is not a valid SNI value (RFC 6066 §3): the certificate is then checked against the IP.
  if (serverName !== null) opts.servername = serverName;
  if (conf !== null && (conf.ca !== null || conf.cert !== null)) opts.secureContext = secureContextOf(up);
  return opts;
}

/** node:tls, loaded by the first https target: a worker without one never loads it before it is ready. */
const tlsModule = (): typeof tls => process.getBuiltinModule('node:tls');

const contexts = new WeakMap<UpstreamConfig, tls.SecureContext>();

function secureContextOf(up: UpstreamConfig): tls.SecureContext {
  let ctx = contexts.get(up);
  if (ctx === undefined) {
    const conf = up.tls!;
    const tls = tlsModule();
    ctx = tls.createSecureContext({
      ...(conf.ca !== null ? { ca: [...tls.rootCertificates, conf.ca] } : null),
      ...(conf.cert !== null ? { cert: conf.cert, key: conf.key! } : null),
    });
    contexts.set(up, ctx);
  }
  return ctx;
}

export function endpointOf(up: UpstreamConfig, t: TargetConfig): TargetEndpoint {
  if (t.socketPath !== null) return { kind: 'unix', host: 'localhost', port: 0, socketPath: t.socketPath, tls: null };
  const url = new URL(t.origin);
  // URL keeps IPv6 literals in brackets; sockets want them bare.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const secure = url.protocol === 'https:';
  const port = url.port !== '' ? Number(url.port) : secure ? 443 : 80;
  return { kind: secure ? 'tls' : 'tcp', host, port, socketPath: null, tls: secure ? tlsOptions(up, host) : null };
}

/** `host:port` for a Host header or an HTTP/2 authority, IPv6 in brackets; the port left out when it is `defaultPort`. */
export function hostPort(host: string, port: number, defaultPort = -1): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return port === defaultPort ? h : `${h}:${port}`;
}

/** `connect` options of an undici Client for this endpoint (the health checks, health.ts). */
export function undiciConnect(e: TargetEndpoint, timeout: number): Record<string, unknown> {
  return { timeout, ...(e.socketPath !== null ? { socketPath: e.socketPath } : null), ...e.tls };
}

/** The HTTP/1.1 ALPN id, offered alone on TLS connections of HTTP/1.1 upstreams (as undici does). */
const ALPN_H1 = ['http/1.1'];

/**
 * Open a connection for HTTP/1.1 (h1-conn.ts): TCP, a unix socket, or TLS with the upstream's settings, resuming
 * `session` when there is one (nginx's `proxy_ssl_session_reuse`); `onSession` receives new ones. The socket is
 * ready on 'connect' (TCP, unix) or 'secureConnect' (TLS), returned beside it.
 */
export function connectH1(e: TargetEndpoint, session: Buffer | null, onSession: (s: Buffer) => void): { socket: net.Socket; ready: 'connect' | 'secureConnect' } {
  if (e.kind === 'tls') {
    const socket = tlsModule().connect({ ...e.tls, host: e.host, port: e.port, ALPNProtocols: ALPN_H1, ...(session !== null ? { session } : null) });
    socket.on('session', onSession);
    return { socket, ready: 'secureConnect' };
  }
  return { socket: e.socketPath !== null ? net.connect({ path: e.socketPath }) : net.connect({ host: e.host, port: e.port }), ready: 'connect' };
}

/**
 * Open a connection for HTTP/2: prior knowledge on TCP and unix sockets, ALPN `h2` on TLS (a target that picks
 * something else fails with NO_H2). `done` gets the socket once it is ready for the preface, or the error;
 * `session` is a TLS session to resume (nginx's `proxy_ssl_session_reuse`), and `onSession` receives new ones.
 */
export function connectH2(e: TargetEndpoint, timeout: number, session: Buffer | null, onSession: (s: Buffer) => void, done: (err: Error | null, socket: net.Socket | null) => void): net.Socket {
  let socket: net.Socket;
  if (e.kind === 'tls') {
    socket = tlsModule().connect({ ...e.tls, host: e.host, port: e.port, ALPNProtocols: [ALPN_H2], ...(session !== null ? { session } : null) });
    socket.on('session', onSession);
  } else {
    socket = e.socketPath !== null ? net.connect({ path: e.socketPath }) : net.connect({ host: e.host, port: e.port });
  }
  socket.setNoDelay(true);
  let settled = false;
  const finish = (err: Error | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('error', finish);
    if (err !== null) {
      socket.destroy();
      done(err, null);
    } else {
      done(null, socket);
    }
  };
  const timer = setTimeout(() => finish(coded('UND_ERR_CONNECT_TIMEOUT', `connect timeout after ${timeout} ms`)), timeout);
  socket.once(e.kind === 'tls' ? 'secureConnect' : 'connect', () => {
    const alpn = (socket as tls.TLSSocket).alpnProtocol;
    if (e.kind === 'tls' && alpn !== ALPN_H2) finish(coded(NO_H2, `the target does not speak HTTP/2: ALPN offered h2, got ${alpn === false ? 'none' : String(alpn)}`));
    else finish(null);
  });
  socket.on('error', finish);
  return socket;
}

/** Where http-proxy opens a WebSocket tunnel to (HTTP/1.1 whatever the upstream's protocol), and how. */
export interface TunnelTarget {
  readonly target: { protocol: string; host: string; hostname: string; port: number; socketPath?: string };
  /** TLS targets: an agent carrying the upstream's TLS options (SNI name, CA, client certificate, verify). */
  readonly agent: https.Agent | undefined;
}

export function tunnelTarget(e: TargetEndpoint): TunnelTarget {
  const protocol = e.kind === 'tls' ? 'https:' : 'http:';
  const target = { protocol, host: e.host, hostname: e.host, port: e.port, ...(e.socketPath !== null ? { socketPath: e.socketPath } : null) };
  return { target, agent: e.tls !== null ? new (process.getBuiltinModule('node:https').Agent)({ ...e.tls, keepAlive: false }) : undefined };
}
