/**
 * @module A route's `request_headers` and `response_headers` (`{set, add, remove}`), its `upstream_host`, and the
 * templates they use. Names and the literal parts of values are checked with Node's own validators here, so that
 * nothing a config says can make a request fail; headers that frame or route the message are not the config's
 * to change (one table per direction).
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { isScalar, isSeq } from 'yaml';
import { literalsOf, parseTemplate } from '../../util/template.js';
import { join, optional, type Cursor, type Reader } from '../reader.js';
import type { HeaderRules, UpstreamHost } from '../types.js';

export type Direction = 'request' | 'response';

/** Headers a rule cannot touch, and why. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
const RESERVED: Readonly<Record<Direction, ReadonlyMap<string, string>>> = {
  request: new Map([
    ...HOP_BY_HOP.map((n): [string, string] => [n, 'a hop-by-hop header']),
    ['http2-settings', 'a hop-by-hop header'],
    ['expect', 'answered by baton itself'],
    ['content-length', 'framing, which baton decides'],
    ['host', 'set by upstream_host'],
  ]),
  response: new Map([
    ...HOP_BY_HOP.map((n): [string, string] => [n, 'a hop-by-hop header']),
    ['content-length', 'framing, which baton decides'],
  ]),
};

export function readHeaderRules(r: Reader, cur: Cursor, direction: Direction): HeaderRules | undefined {
  const f = r.fields(cur, ['set', 'add', 'remove']);
  if (f === undefined) return undefined;
  const seen = new Map<string, string>();
  const set = optional(f.get('set'), (c) => readPairs(r, c, direction, seen, false)) ?? [];
  const add = optional(f.get('add'), (c) => readPairs(r, c, direction, seen, true)) ?? [];
  const remove: string[] = [];
  const removeCur = f.get('remove');
  for (const item of removeCur === undefined ? [] : r.list(removeCur) ?? []) {
    const name = readName(r, item, r.string(item), direction, item.node);
    if (name === undefined) continue;
    const lower = name.toLowerCase();
    const other = seen.get(lower);
    if (other !== undefined) r.fail(item.node, item.path, `"${name}" is also in ${other}: remove drops what the upstream sent, set replaces it anyway`);
    else remove.push(lower);
  }
  return { set, add, remove };
}

/** `name: value` entries; `add` also takes a list of values for one name. */
function readPairs(r: Reader, cur: Cursor, direction: Direction, seen: Map<string, string>, many: boolean): [string, string][] {
  const out: [string, string][] = [];
  for (const { key, keyNode, value } of r.entries(cur) ?? []) {
    const name = readName(r, { node: keyNode, path: join(cur.path, key) }, key, direction, keyNode);
    if (name === undefined) continue;
    const lower = name.toLowerCase();
    const where = join(cur.path, key);
    const other = seen.get(lower);
    if (other !== undefined) {
      r.fail(keyNode, where, `"${name}" is also in ${other}`);
      continue;
    }
    seen.set(lower, cur.path.slice(cur.path.lastIndexOf('.') + 1));
    const values = value !== null && many && isSeq(value.node) ? r.list(value) ?? [] : [value];
    for (const v of values) {
      const text = v === null ? '' : readValue(r, v);
      if (text === undefined) continue;
      if (readTemplate(r, v ?? { node: keyNode, path: where }, text, name) !== undefined) out.push([name, text]);
    }
  }
  return out;
}

function readName(r: Reader, cur: Cursor, name: string | undefined, direction: Direction, at: Cursor['node']): string | undefined {
  if (name === undefined) return undefined;
  try {
    validateHeaderName(name);
  } catch {
    return r.fail(at, cur.path, `invalid header name ${JSON.stringify(name)}`);
  }
  const why = RESERVED[direction].get(name.toLowerCase());
  if (why !== undefined) return r.fail(at, cur.path, `${name.toLowerCase()} cannot be changed by ${direction}_headers: ${why}`);
  return name;
}

/** Numbers are taken as written (`x-version: 2`): YAML typing them is not the writer's intent. */
function readValue(r: Reader, cur: Cursor): string | undefined {
  if (isScalar(cur.node) && typeof cur.node.value === 'number') return cur.node.source ?? String(cur.node.value);
  return r.string(cur, true);
}

/**
 * A value with variables: parsed here so that a typo is a config error, and its literal parts checked as a
 * header value (the variables' own values always are valid: see lib/util/template.ts). Returns the text.
 */
export function readTemplate(r: Reader, cur: Cursor, text: string, header: string): string | undefined {
  const t = parseTemplate(text);
  if (!t.ok) return r.fail(cur.node, cur.path, t.message);
  try {
    validateHeaderValue(header, literalsOf(t.value));
  } catch {
    return r.fail(cur.node, cur.path, 'invalid header value: control characters are not allowed');
  }
  return text;
}

/** A host name or address with an optional port, as a Host header carries it. */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?::\d{1,5})?$/;

/** `preserve` (the default), `target`, or a host name sent as it is. */
export function readUpstreamHost(r: Reader, cur: Cursor | undefined): UpstreamHost {
  if (cur === undefined) return { kind: 'preserve' };
  const text = r.string(cur);
  if (text === undefined) return { kind: 'preserve' };
  if (text === 'preserve' || text === 'target') return { kind: text };
  if (!HOST_VALUE.test(text) || text.includes('..')) {
    r.mismatch(cur, 'preserve, target, or a host name like app.internal or app.internal:8080');
    return { kind: 'preserve' };
  }
  return { kind: 'fixed', host: text };
}
