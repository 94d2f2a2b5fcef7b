/** @module A route's `return` block: a fixed response (status, body, headers) served without an upstream. */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { isScalar } from 'yaml';
import { join, optional, type Cursor, type Reader } from '../reader.js';
import type { ReturnAction } from '../types.js';

/** Statuses whose responses cannot carry a body (RFC 9110 §6.4.1). */
const NO_BODY = (status: number) => status < 200 || status === 204 || status === 304;

export function readReturn(r: Reader, cur: Cursor): ReturnAction | undefined {
  const f = r.fields(cur, ['status', 'body', 'headers']);
  if (f === undefined) return undefined;
  const status = optional(f.required('status'), (c) => r.integer(c, 100, 599, 'an HTTP status 100..599'));
  const bodyCur = f.get('body');
  const body = optional(bodyCur, (c) => r.string(c, true)) ?? '';
  // Node drops such a body without a word; whoever wrote one should hear about it.
  if (bodyCur !== undefined && status !== undefined && NO_BODY(status) && body !== '') r.fail(bodyCur.node, bodyCur.path, `a ${status} response has no body`);
  const headers = optional(f.get('headers'), (c) => readHeaders(r, c)) ?? {};
  if (body !== '' && !('content-type' in headers)) headers['content-type'] = 'text/plain; charset=utf-8';
  return status === undefined ? undefined : { status, body, headers };
}

/** Checked with Node's own validators, because setHeader() would otherwise throw on every request. */
function readHeaders(r: Reader, cur: Cursor): Record<string, string> {
  const headers: [string, string][] = [];
  for (const { key, keyNode, value } of r.entries(cur) ?? []) {
    const name = key.toLowerCase();
    try {
      validateHeaderName(name);
    } catch {
      r.fail(keyNode, cur.path, `invalid header name ${JSON.stringify(key)}`);
      continue;
    }
    const text = value === null ? '' : readHeaderValue(r, value);
    if (text === undefined) continue;
    try {
      validateHeaderValue(name, text);
    } catch {
      r.fail(value?.node ?? keyNode, join(cur.path, key), 'invalid header value: control characters are not allowed');
      continue;
    }
    headers.push([name, text]);
  }
  // fromEntries defines own properties, so even a header named `__proto__` stays an ordinary key.
  return Object.fromEntries(headers);
}

/** Numbers are taken as written (`x-version: 2`, `max-forwards: 010`): YAML typing them is not the user's intent. */
function readHeaderValue(r: Reader, cur: Cursor): string | undefined {
  if (isScalar(cur.node) && typeof cur.node.value === 'number') return cur.node.source ?? String(cur.node.value);
  return r.string(cur, true);
}
