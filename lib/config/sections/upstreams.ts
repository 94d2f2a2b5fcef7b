/** @module The `upstreams` section: named groups of targets, their balancing and timeouts. */
import { DURATION_FORMAT, parseDuration } from '../../util/duration.js';
import { expected, parsed, type Parsed } from '../../util/parsed.js';
import { join, optional, type Cursor, type Reader } from '../reader.js';
import type { Balance, TargetConfig, UpstreamConfig } from '../types.js';

const KEYS = ['balance', 'targets', 'connect_timeout', 'response_timeout', 'idle_timeout', 'keepalive_timeout'];
const BALANCES: readonly Balance[] = ['round_robin', 'least_conn', 'random'];
const NAME = /^[A-Za-z0-9_.-]+$/;

export interface Upstreams {
  readonly upstreams: Record<string, UpstreamConfig>;
  /** Every name defined, valid or not, so a route naming a broken upstream is not also reported as unknown. */
  readonly names: ReadonlySet<string>;
}

export function readUpstreams(r: Reader, cur: Cursor | undefined): Upstreams {
  const upstreams: [string, UpstreamConfig][] = [];
  const names = new Set<string>();
  for (const { key: name, keyNode, value } of optional(cur, (c) => r.entries(c)) ?? []) {
    names.add(name);
    if (!NAME.test(name)) r.fail(keyNode, 'upstreams', `invalid name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-"`);
    if (value === null) r.fail(keyNode, join('upstreams', name), 'expected a map, got nothing');
    const upstream = value === null ? undefined : readUpstream(r, name, value);
    if (upstream !== undefined) upstreams.push([name, upstream]);
  }
  // fromEntries defines own properties, so even a name like `__proto__` stays an ordinary key.
  return { upstreams: Object.fromEntries(upstreams), names };
}

function readUpstream(r: Reader, name: string, cur: Cursor): UpstreamConfig | undefined {
  const f = r.fields(cur, KEYS);
  if (f === undefined) return undefined;
  const duration = (c: Cursor) => r.parse(c, DURATION_FORMAT, parseDuration);
  const targets = optional(f.required('targets'), (c) => r.list(c, 'target'))?.map((c) => readTarget(r, c));
  return {
    name,
    balance: optional(f.get('balance'), (c) => r.oneOf(c, BALANCES)) ?? 'round_robin',
    targets: targets?.filter((t) => t !== undefined) ?? [],
    connectTimeout: optional(f.get('connect_timeout'), duration) ?? 5_000,
    responseTimeout: optional(f.get('response_timeout'), duration) ?? 60_000,
    idleTimeout: optional(f.get('idle_timeout'), duration) ?? 60_000,
    keepaliveTimeout: optional(f.get('keepalive_timeout'), duration) ?? 4_000,
  };
}

function readTarget(r: Reader, cur: Cursor): TargetConfig | undefined {
  const f = r.fields(cur, ['url', 'weight']);
  if (f === undefined) return undefined;
  const url = optional(f.required('url'), (c) => r.parse(c, 'a URL like http://127.0.0.1:9001', parseTargetUrl));
  const weight = optional(f.get('weight'), (c) => r.integer(c, 1, Number.MAX_SAFE_INTEGER, 'an integer >= 1')) ?? 1;
  return url === undefined ? undefined : { ...url, weight };
}

/** An origin and nothing else: the request's own path is forwarded as is, so a base path here would be ignored. */
export function parseTargetUrl(input: string | number): Parsed<{ url: string; origin: string }> {
  const what = 'a URL like http://127.0.0.1:9001';
  let u: URL;
  try {
    u = new URL(String(input));
  } catch {
    return expected(what, input);
  }
  if (u.protocol === 'https:') return { ok: false, message: 'https upstreams are not supported yet' };
  if (u.protocol !== 'http:') return expected(what, input);
  if (u.username !== '' || u.password !== '') return expected('a URL without credentials', input);
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '') return expected('a URL without a path, query or fragment', input);
  return parsed({ url: String(input), origin: u.origin });
}
