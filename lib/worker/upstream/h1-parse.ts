/**
 * @module Parsing an HTTP/1.x response from an upstream (pure functions): the head (status line and header
 * fields) and the size line of a chunk. Strict where framing is decided, as llhttp is by default and as nginx is
 * with upstreams: a header that could make us and the upstream disagree on where the response ends (two
 * Content-Lengths, Content-Length beside Transfer-Encoding, an obsolete line fold, a bare CR) refuses the response
 * (502) rather than guessing. Errors carry llhttp's `HPE_*` codes, which errors.ts classifies as protocol failures.
 */
import { TOKEN } from '../../util/http-token.js';
import { coded } from '../errors.js';

/** The largest response head accepted (undici's and Node's default `maxHeaderSize`). */
export const MAX_HEAD = 16 * 1024;
/** A chunk-size line (size and extensions) longer than this is refused. */
export const MAX_CHUNK_LINE = 4096;

/** How the body of a response is delimited (RFC 9112 §6.3). */
export const enum Framing {
  /** HEAD, 1xx, 204, 304: no body whatever the headers say. */
  None,
  Length,
  Chunked,
  /** Neither: the body runs until the upstream closes; the connection cannot be reused. */
  Close,
}

export interface ResponseHead {
  readonly status: number;
  readonly statusText: string;
  /** Flat `[name, value, ...]`, names as sent. */
  readonly headers: string[];
  readonly framing: Framing;
  /** Content-Length, for `Framing.Length`. */
  readonly length: number;
  /** The connection may carry another request after this response. */
  readonly keepAlive: boolean;
  /** The `Keep-Alive: timeout=N` hint in ms, or -1. */
  readonly keepAliveHint: number;
}

/** Control characters other than HTAB are not allowed in a field value (RFC 9110 §5.5); CR and LF above all. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[\s,;])timeout\s*=\s*(\d{1,9})/i;

/**
 * Parse a response head: `text` is everything before the blank line, decoded as latin1. `method` decides HEAD's
 * empty body. Throws an `HPE_*` coded error for anything malformed.
 */
export function parseHead(text: string, method: string): ResponseHead {
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  const m = STATUS_LINE.exec(text.slice(0, eol));
  if (m === null) throw coded(text.startsWith('HTTP/') ? 'HPE_INVALID_STATUS' : 'HPE_INVALID_CONSTANT', 'the upstream sent an invalid status line');
  const http10 = m[1] === '0';
  const status = Number(m[2]);
  if (status < 100) throw coded('HPE_INVALID_STATUS', 'the upstream sent an invalid status code');
  const headers: string[] = [];
  let length = -1;
  let te: string | null = null;
  let connection: string | null = null;
  let keepAliveHint = -1;
  let start = eol + 2;
  while (start < text.length) {
    let end = text.indexOf('\r\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 2;
    const colon = line.indexOf(':');
    if (colon <= 0) throw coded('HPE_INVALID_HEADER_TOKEN', 'the upstream sent an invalid header line');
    const name = line.slice(0, colon);
    // A name with whitespace before the colon, or a line starting with whitespace (obsolete folding), fails here.
    if (!TOKEN.test(name)) throw coded('HPE_INVALID_HEADER_TOKEN', 'the upstream sent an invalid header name');
    const value = trimOws(line, colon + 1);
    if (BAD_VALUE.test(value)) throw coded('HPE_INVALID_HEADER_TOKEN', 'the upstream sent an invalid header value');
    headers.push(name, value);
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (length !== -1) throw coded('HPE_UNEXPECTED_CONTENT_LENGTH', 'the upstream sent more than one content-length');
          length = parseLength(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') te = te === null ? value : `${te}, ${value}`;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') connection = connection === null ? value : `${connection}, ${value}`;
        else if (name.toLowerCase() === 'keep-alive') {
          const k = KEEP_ALIVE_TIMEOUT.exec(value);
          if (k !== null) keepAliveHint = Number(k[1]) * 1000;
        }
        break;
    }
  }
  if (te !== null && length !== -1) throw coded('HPE_UNEXPECTED_CONTENT_LENGTH', 'the upstream sent both content-length and transfer-encoding');
  let keepAlive = http10 ? connection !== null && hasToken(connection, 'keep-alive') : connection === null || !hasToken(connection, 'close');
  let framing: Framing;
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) framing = Framing.None;
  else if (te !== null) {
    // Only chunked, as nginx has it: the proxy removes the chunking and drops the header, so a body in any other
    // transfer coding (`gzip, chunked`) would reach the client coded, with nothing saying so.
    if (te.trim().toLowerCase() !== 'chunked') throw coded('HPE_INVALID_TRANSFER_ENCODING', `the upstream sent Transfer-Encoding: ${te} (only chunked is relayed)`);
    framing = Framing.Chunked;
  } else if (length !== -1) framing = Framing.Length;
  else framing = Framing.Close;
  // An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 §6.1): close after it.
  if (framing === Framing.Close || (http10 && te !== null)) keepAlive = false;
  return { status, statusText: m[3] ?? '', headers, framing, length: length === -1 ? 0 : length, keepAlive, keepAliveHint };
}

/** 2^48: far beyond any body; one more digit on top of it is still exact in a double. */
const MAX_CHUNK_SIZE = 2 ** 48;

/**
 * The size in a chunk-size line (without its CRLF): hex digits, then optional extensions (`;name=value`, with
 * optional whitespace before the semicolon), which are ignored. Throws HPE_INVALID_CHUNK_SIZE.
 */
export function parseChunkSize(line: string): number {
  let i = 0;
  let size = 0;
  for (; i < line.length; i++) {
    const d = hexDigit(line.charCodeAt(i));
    if (d === -1) break;
    size = size * 16 + d;
    // The value is bounded, not the digits: leading zeros are allowed (as llhttp and nginx allow them).
    if (size > MAX_CHUNK_SIZE) throw coded('HPE_INVALID_CHUNK_SIZE', 'the upstream sent a chunk size that is too large');
  }
  if (i === 0) throw coded('HPE_INVALID_CHUNK_SIZE', 'the upstream sent an invalid chunk size');
  if (i < line.length) {
    let j = i;
    while (j < line.length && (line.charCodeAt(j) === 32 || line.charCodeAt(j) === 9)) j++;
    if (j === line.length || line.charCodeAt(j) !== 59 /* ; */ || BAD_VALUE.test(line.slice(j))) {
      throw coded('HPE_INVALID_CHUNK_SIZE', 'the upstream sent an invalid chunk size');
    }
  }
  return size;
}

/** Trailer fields after the last chunk, each line without its CRLF: flat `[name, value, ...]`. */
export function parseTrailers(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw coded('HPE_INVALID_HEADER_TOKEN', 'the upstream sent an invalid trailer line');
    const value = trimOws(line, colon + 1);
    if (BAD_VALUE.test(value)) throw coded('HPE_INVALID_HEADER_TOKEN', 'the upstream sent an invalid trailer value');
    out.push(name, value);
  }
  return out;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

function parseLength(value: string): number {
  if (value.length === 0 || value.length > 15) throw coded('HPE_INVALID_CONTENT_LENGTH', 'the upstream sent an invalid content-length');
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) throw coded('HPE_INVALID_CONTENT_LENGTH', 'the upstream sent an invalid content-length');
  }
  return Number(value);
}

/** The value from `from`, without leading and trailing spaces and tabs. */
function trimOws(line: string, from: number): string {
  let s = from;
  let e = line.length;
  while (s < e && (line.charCodeAt(s) === 32 || line.charCodeAt(s) === 9)) s++;
  while (e > s && (line.charCodeAt(e - 1) === 32 || line.charCodeAt(e - 1) === 9)) e--;
  return line.slice(s, e);
}

function hasToken(list: string, token: string): boolean {
  if (list.length === token.length) return list.toLowerCase() === token;
  for (const part of list.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}
