/**
 * @module One upstream target (`url`, `weight`, `max_connections`) and an upstream's `tls` block: what a URL may
 * name (http, https, a unix socket) and the TLS files, read and checked at load time so that a bad file is a
 * config error and not a 502 later.
 */
import { createSecureContext } from 'node:tls';
import { expected, parsed, type Parsed } from '../../util/parsed.js';
import { readPem } from '../certificate.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { TargetConfig, UpstreamTlsConfig } from '../types.js';

const URL_FORMAT = 'a URL like http://127.0.0.1:9001, https://api.internal:8443 or unix:/run/app.sock';
/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107;
/** A DNS name for SNI: letters, digits, `-`, dots between labels (no wildcard, no port, no IP literal needed). */
const SERVER_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function readTarget(r: Reader, cur: Cursor): TargetConfig | undefined {
  const f = r.fields(cur, ['url', 'weight', 'max_connections']);
  if (f === undefined) return undefined;
  const url = optional(f.required('url'), (c) => readTargetUrl(r, c));
  const weight = optional(f.get('weight'), (c) => r.integer(c, 1, Number.MAX_SAFE_INTEGER, 'an integer >= 1')) ?? 1;
  const maxConnections = optional(f.get('max_connections'), (c) => r.integer(c, 0, 1_000_000, 'an integer >= 0 (0 = no cap)')) ?? 0;
  return url === undefined ? undefined : { ...url, weight, maxConnections };
}

type TargetUrl = Pick<TargetConfig, 'url' | 'origin' | 'socketPath'>;

function readTargetUrl(r: Reader, cur: Cursor): TargetUrl | undefined {
  const parsedUrl = r.parse(cur, URL_FORMAT, parseTargetUrl);
  if (parsedUrl === undefined || parsedUrl.socketPath === null) return parsedUrl;
  // Relative socket paths resolve against the config file's directory, like every other path.
  const socketPath = r.resolve(parsedUrl.socketPath);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) return r.fail(cur.node, cur.path, `the socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes (the kernel's limit)`);
  return { ...parsedUrl, socketPath };
}

/**
 * An origin and nothing else (the request's own path is forwarded as is, so a base path here would be ignored),
 * or `unix:PATH`. A unix socket target's pool origin is `http://localhost`: the Host header is the client's anyway.
 */
export function parseTargetUrl(input: string | number): Parsed<TargetUrl> {
  const text = String(input);
  if (text.startsWith('unix:')) {
    const socketPath = text.slice(5);
    if (socketPath === '' || socketPath.includes('\0')) return expected('a socket path after unix:', input);
    return parsed({ url: text, origin: 'http://localhost', socketPath });
  }
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return expected(URL_FORMAT, input);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return expected(URL_FORMAT, input);
  if (u.username !== '' || u.password !== '') return expected('a URL without credentials', input);
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') return expected('a URL without a path, query or fragment', input);
  return parsed({ url: text, origin: u.origin, socketPath: null });
}

/** `tls: {ca, cert, key, server_name, verify}`; every key optional, `cert` and `key` together. */
export function readUpstreamTls(r: Reader, cur: Cursor): UpstreamTlsConfig | undefined {
  const f = r.fields(cur, ['ca', 'cert', 'key', 'server_name', 'verify']);
  if (f === undefined) return undefined;
  const ca = optional(f.get('ca'), (c) => readPem(r, c));
  const cert = optional(f.get('cert'), (c) => readPem(r, c));
  const key = optional(f.get('key'), (c) => readPem(r, c));
  const serverName = optional(f.get('server_name'), (c) => {
    const name = r.string(c);
    if (name === undefined) return undefined;
    return SERVER_NAME.test(name.toLowerCase()) ? name.toLowerCase() : r.mismatch(c, 'a DNS name like api.internal (no port, no wildcard)');
  });
  const verify = optional(f.get('verify'), (c) => r.bool(c)) ?? true;
  let ok = true;
  if (ca !== undefined) {
    try {
      createSecureContext({ ca: ca.text });
    } catch (err) {
      ok = false;
      r.fail(ca.cur.node, ca.cur.path, `not a usable CA certificate: ${(err as Error).message}`);
    }
  }
  if ((cert === undefined) !== (key === undefined)) {
    const [given, missing] = cert !== undefined ? [cert, 'key'] : [key!, 'cert'];
    return r.fail(given.cur.node, given.cur.path, `a client certificate needs both cert and key: ${missing} is missing`);
  }
  if (cert !== undefined && key !== undefined) {
    try {
      createSecureContext({ cert: cert.text, key: key.text });
    } catch (err) {
      return r.fail(cert.cur.node, cert.cur.path, `cannot be used with ${key.cur.path}: ${(err as Error).message}`);
    }
  }
  if (!ok) return undefined;
  return {
    caFile: ca?.file ?? null,
    ca: ca?.text ?? null,
    certFile: cert?.file ?? null,
    keyFile: key?.file ?? null,
    cert: cert?.text ?? null,
    key: key?.text ?? null,
    serverName: serverName ?? null,
    verify,
  };
}
