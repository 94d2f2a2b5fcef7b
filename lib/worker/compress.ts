/**
 * @module Response compression (top-level `compression`, `compress: false` per route). `Compression.decide` looks at
 * one response head: never HEAD, 1xx/204/304, ranges (206, Content-Range), HTTP/1.0, an upstream Content-Encoding,
 * `Cache-Control: no-transform`, a type not listed or a Content-Length under `min_size`. A response that could be
 * compressed gets `Vary: Accept-Encoding` whether or not this client takes a coding; a compressed one loses its
 * Content-Length and Accept-Ranges, and its strong ETag becomes weak (the bytes differ, the meaning does not).
 * The body is then compressed by an encoder (encoder.ts).
 */
import type { CompressionAlgorithm, CompressionConfig } from '../config/types.js';

/** What a response head says, read in one pass over its flat header list. */
interface Head {
  type: string | null;
  length: number;
  etag: number;
  vary: number;
  noTransform: boolean;
  encoded: boolean;
  range: boolean;
}

export class Compression {
  readonly #algorithms: readonly CompressionAlgorithm[];
  readonly #exact: ReadonlySet<string>;
  /** `text/` for `text/*`. */
  readonly #prefixes: readonly string[];
  /** [`application/`, `+json`] for `application/*+json`. */
  readonly #suffixes: readonly (readonly [string, string])[];
  readonly #minSize: number;

  constructor(config: CompressionConfig) {
    this.#algorithms = config.algorithms;
    const exact = new Set<string>();
    const prefixes: string[] = [];
    const suffixes: [string, string][] = [];
    for (const t of config.types) {
      const star = t.indexOf('/*');
      if (star === -1) exact.add(t);
      else if (star + 2 === t.length) prefixes.push(t.slice(0, star + 1));
      else suffixes.push([t.slice(0, star + 1), t.slice(star + 2)]);
    }
    this.#exact = exact;
    this.#prefixes = prefixes;
    this.#suffixes = suffixes;
    this.#minSize = config.minSize;
  }

  /**
   * The coding for this response, or null. `headers` (the client response's flat list) is changed in place: Vary
   * when the response could be compressed, and for a compressed one Content-Encoding, no Content-Length, no
   * Accept-Ranges, a weak ETag. `req`: the client request (its method, version and Accept-Encoding).
   */
  decide(req: Request, status: number, headers: string[]): CompressionAlgorithm | null {
    if (req.method === 'HEAD' || status < 200 || status === 204 || status === 304 || status === 206) return null;
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return null; // no chunked framing (nginx's gzip_http_version)
    const head = readHead(headers);
    if (head.encoded || head.range || head.noTransform || head.type === null || !this.#typeMatches(head.type)) return null;
    if (head.length !== -1 && head.length < this.#minSize) return null;
    addVary(headers, head.vary);
    const coding = this.#negotiate(req.rawHeaders);
    if (coding === null) return null;
    let w = 0;
    for (let r = 0; r < headers.length; r += 2) {
      const lower = headers[r]!.toLowerCase();
      if (lower === 'content-length' || lower === 'accept-ranges') continue;
      let value = headers[r + 1]!;
      if (lower === 'etag' && !value.startsWith('W/')) value = 'W/' + value;
      headers[w++] = headers[r]!;
      headers[w++] = value;
    }
    headers.length = w;
    headers.push('content-encoding', coding);
    return coding;
  }

  #typeMatches(type: string): boolean {
    if (this.#exact.has(type)) return true;
    for (const p of this.#prefixes) if (type.startsWith(p)) return true;
    for (const [p, s] of this.#suffixes) if (type.startsWith(p) && type.endsWith(s)) return true;
    return false;
  }

  /** The configured coding the client prefers (highest q, then config order); null when it accepts none. */
  #negotiate(raw: readonly string[]): CompressionAlgorithm | null {
    let accept: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === 15 && n.toLowerCase() === 'accept-encoding') accept = accept === null ? raw[i + 1]! : `${accept},${raw[i + 1]!}`;
    }
    if (accept === null) return null;
    let best: CompressionAlgorithm | null = null;
    let bestQ = 0;
    for (const algorithm of this.#algorithms) {
      const q = acceptedQ(accept, algorithm);
      if (q > bestQ) {
        best = algorithm;
        bestQ = q;
      }
    }
    return best;
  }
}

/** What `decide` reads of the client request (an http.IncomingMessage, or an HTTP/2 compat request). */
export interface Request {
  readonly method?: string | undefined;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly rawHeaders: readonly string[];
}

/** The q-value `accept` (an Accept-Encoding value) gives `coding`: its own entry, else `*`'s, else 0. */
export function acceptedQ(accept: string, coding: string): number {
  let star = -1;
  for (const item of accept.split(',')) {
    const semi = item.indexOf(';');
    const name = (semi === -1 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (name !== coding && name !== '*') continue;
    let q = 1;
    if (semi !== -1) {
      const m = /(?:^|;)\s*q\s*=\s*([0-9.]+)\s*(?:;|$)/i.exec(item.slice(semi));
      if (m !== null) q = Math.min(1, Math.max(0, Number(m[1]) || 0));
    }
    if (name === coding) return q;
    star = q;
  }
  return star === -1 ? 0 : star;
}

function readHead(headers: readonly string[]): Head {
  const h: Head = { type: null, length: -1, etag: -1, vary: -1, noTransform: false, encoded: false, range: false };
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    const value = headers[i + 1]!;
    switch (lower) {
      case 'content-type': {
        const semi = value.indexOf(';');
        h.type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
        break;
      }
      case 'content-length': h.length = /^\d+$/.test(value.trim()) ? Number(value.trim()) : -1; break;
      case 'content-encoding': if (value.trim() !== '') h.encoded = true; break;
      case 'content-range': h.range = true; break;
      case 'cache-control': if (/(?:^|[\s,])no-transform(?:$|[\s,])/i.test(value)) h.noTransform = true; break;
      case 'etag': h.etag = i; break;
      case 'vary': if (h.vary === -1) h.vary = i; break;
    }
  }
  return h;
}

/** `Vary: Accept-Encoding`, appended to the upstream's Vary unless it says so already (or says `*`). */
function addVary(headers: string[], at: number): void {
  if (at === -1) {
    headers.push('vary', 'Accept-Encoding');
    return;
  }
  const value = headers[at + 1]!;
  if (/(?:^|,)\s*(?:\*|accept-encoding)\s*(?:,|$)/i.test(value)) return;
  headers[at + 1] = value.trim() === '' ? 'Accept-Encoding' : `${value}, Accept-Encoding`;
}
