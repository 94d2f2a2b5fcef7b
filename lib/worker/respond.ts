/**
 * @module Responses baton writes itself: `return` and `redirect` routes and short plain-text error pages, on a
 * ServerResponse (HTTP/1.1 or HTTP/2) or as raw HTTP/1.1 bytes on an upgrade socket. Everything that can be
 * prepared per config or per status is prepared once; a redirect's Location is rendered from its template.
 */
import http from 'node:http';
import type { RedirectAction, ReturnAction } from '../config/types.js';
import { constantOf, parseTemplate, render, type TemplatePart, type VariableSource } from '../util/template.js';

const TEXT_PLAIN = 'text/plain; charset=utf-8';

/** A `return` or `redirect` route compiled once: body bytes and the header list without the per-request id. */
export interface CompiledReturn {
  readonly status: number;
  readonly body: Buffer;
  /** Flat header list: content-type (defaulted), content-length, configured headers. */
  readonly headers: readonly string[];
  /** A redirect's Location template, or null. */
  readonly location: readonly TemplatePart[] | null;
}

/** What a local answer needs of its request: the request id, and the variables of a Location. */
export type Answered = VariableSource;

/** Statuses whose responses never carry a body (RFC 9110 §6.4.1). */
function bodiless(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

export function compileReturn(action: ReturnAction): CompiledReturn {
  const body = bodiless(action.status) ? Buffer.alloc(0) : Buffer.from(action.body, 'utf8');
  const headers: string[] = [];
  let hasType = false;
  for (const name of Object.keys(action.headers)) {
    const lower = name.toLowerCase();
    if (lower === 'content-length' || lower === 'transfer-encoding' || lower === 'connection') continue; // ours to decide
    if (lower === 'content-type') hasType = true;
    headers.push(name, action.headers[name]!);
  }
  if (!hasType && body.length > 0) headers.push('content-type', TEXT_PLAIN);
  if (!bodiless(action.status)) headers.push('content-length', String(body.length));
  return { status: action.status, body, headers, location: null };
}

/** A redirect: no body (clients follow the Location), the Location rendered per request. */
export function compileRedirect(action: RedirectAction): CompiledReturn {
  const t = parseTemplate(action.to);
  if (!t.ok) throw new Error(`redirect: ${t.message}`); // validated by the config loader
  const constant = constantOf(t.value);
  const headers = ['content-length', '0'];
  if (constant !== null) headers.push('location', constant);
  return { status: action.status, body: Buffer.alloc(0), headers, location: constant === null ? t.value : null };
}

/** Write a compiled `return` or `redirect` response. HEAD gets the headers (with the body's length) and no body. */
export function sendReturn(res: http.ServerResponse, ret: CompiledReturn, a: Answered, head: boolean): number {
  const headers = ret.headers.slice();
  if (ret.location !== null) headers.push('location', render(ret.location, a));
  headers.push('x-request-id', a.requestId);
  res.writeHead(ret.status, headers);
  if (head || ret.body.length === 0) {
    res.end();
    return 0;
  }
  res.end(ret.body);
  return ret.body.length;
}

const errorPages = new Map<number, Buffer>();

/** `502 Bad Gateway\n`: short, plain, cached per status. */
function errorBody(status: number): Buffer {
  let body = errorPages.get(status);
  if (body === undefined) {
    body = Buffer.from(`${status} ${http.STATUS_CODES[status] ?? 'Error'}\n`, 'latin1');
    errorPages.set(status, body);
  }
  return body;
}

/**
 * Write an error page. `close` asks HTTP/1.1 to close the connection afterwards (the client's request body
 * was not read to its end; reading the rest just to discard it would waste the bandwidth). Returns the body
 * bytes written.
 */
export function sendError(res: http.ServerResponse, status: number, requestId: string, head: boolean, close: boolean): number {
  const body = errorBody(status);
  if (close) res.shouldKeepAlive = false; // HTTP/2 responses ignore it: nothing connection-specific is written
  res.writeHead(status, ['content-type', TEXT_PLAIN, 'content-length', String(body.length), 'x-request-id', requestId]);
  if (head) {
    res.end();
    return 0;
  }
  res.end(body);
  return body.length;
}

/** A complete raw HTTP/1.1 response for a socket taken over by an upgrade; the connection closes after it. */
function rawResponse(status: number, body: Buffer, headers: readonly string[] = []): Buffer {
  let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  head += `connection: close\r\ncontent-length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

export function rawError(status: number, requestId: string): Buffer {
  return rawResponse(status, errorBody(status), ['content-type', TEXT_PLAIN, 'x-request-id', requestId]);
}

export function rawReturn(ret: CompiledReturn, a: Answered): Buffer {
  // content-length is written by rawResponse itself.
  const headers: string[] = [];
  for (let i = 0; i < ret.headers.length; i += 2) if (ret.headers[i] !== 'content-length') headers.push(ret.headers[i]!, ret.headers[i + 1]!);
  if (ret.location !== null) headers.push('location', render(ret.location, a));
  headers.push('x-request-id', a.requestId);
  return rawResponse(ret.status, ret.body, headers);
}
