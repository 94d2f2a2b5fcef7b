/**
 * @module The `upstreams` section: named groups of targets, their protocol and TLS, balancing, timeouts, health
 * checks, connection caps and queue, and retry policy (targets and TLS in upstream-target.ts, policies in
 * upstream-policy.ts).
 */
import { DURATION_FORMAT, parseDuration } from '../../util/duration.js';
import { isSeq } from 'yaml';
import { expected, parsed, type Parsed } from '../../util/parsed.js';
import { join, optional, type Cursor, type Reader } from '../reader.js';
import type { Balance, HealthCheckConfig, UpstreamConfig, UpstreamProtocol } from '../types.js';
import { readDuration } from './limits.js';
import { DEFAULT_RETRY, readHashKey, readQueue, readRetry } from './upstream-policy.js';
import { readTarget, readUpstreamTls } from './upstream-target.js';

export { parseTargetUrl } from './upstream-target.js';

const KEYS = [
  'balance', 'hash_key', 'protocol', 'targets', 'tls', 'connect_timeout', 'response_timeout', 'idle_timeout', 'keepalive_timeout',
  'max_fails', 'fail_timeout', 'health_check', 'queue', 'retry',
];
const HEALTH_KEYS = ['path', 'interval', 'timeout', 'expect', 'fails', 'passes'];
/** nginx's and HAProxy's default: any 2xx or 3xx answer passes. */
const DEFAULT_EXPECT: readonly (readonly [number, number])[] = [[200, 399]];
const STATUS_FORMAT = 'a status like 200 or a class like 2xx';
const BALANCES: readonly Balance[] = ['round_robin', 'least_conn', 'random', 'hash'];
const PROTOCOLS: readonly UpstreamProtocol[] = ['http1', 'http2'];
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
  const targetsCur = f.required('targets');
  const targets = optional(targetsCur, (c) => r.list(c, 'target'))?.map((c) => readTarget(r, c));
  const balanceCur = f.get('balance');
  const balance = optional(balanceCur, (c) => r.oneOf(c, BALANCES)) ?? 'round_robin';
  const hashKeyCur = f.get('hash_key');
  const hashKey = optional(hashKeyCur, (c) => readHashKey(r, c)) ?? null;
  if (balance === 'hash' && hashKeyCur === undefined) r.fail(balanceCur!.node, balanceCur!.path, 'balance: hash needs a hash_key (client_ip, path, header:NAME or cookie:NAME)');
  if (balance !== 'hash' && hashKeyCur !== undefined) r.fail(hashKeyCur.node, hashKeyCur.path, 'hash_key is only used with balance: hash');
  const tlsCur = f.get('tls');
  const tls = optional(tlsCur, (c) => readUpstreamTls(r, c)) ?? null;
  const valid = targets?.filter((t) => t !== undefined) ?? [];
  if (tlsCur !== undefined && valid.length === targets?.length && !valid.some((t) => t.origin.startsWith('https:'))) {
    r.fail(tlsCur.node, tlsCur.path, 'tls applies to https:// targets, and this upstream has none');
  }
  const queueCur = f.get('queue');
  const queue = optional(queueCur, (c) => readQueue(r, c)) ?? null;
  if (queueCur !== undefined && valid.length === targets?.length && !valid.some((t) => t.maxConnections > 0)) {
    r.fail(queueCur.node, queueCur.path, 'a queue holds requests over targets[].max_connections, and no target of this upstream has one');
  }
  return {
    name,
    balance,
    hashKey: balance === 'hash' ? hashKey : null,
    protocol: optional(f.get('protocol'), (c) => r.oneOf(c, PROTOCOLS)) ?? 'http1',
    targets: valid,
    tls,
    connectTimeout: optional(f.get('connect_timeout'), duration) ?? 5_000,
    responseTimeout: optional(f.get('response_timeout'), duration) ?? 60_000,
    idleTimeout: optional(f.get('idle_timeout'), duration) ?? 60_000,
    keepaliveTimeout: optional(f.get('keepalive_timeout'), duration) ?? 4_000,
    // nginx's defaults: max_fails=1 fail_timeout=10s.
    maxFails: optional(f.get('max_fails'), (c) => r.integer(c, 0, 1_000_000, 'an integer >= 0 (0 = passive health off)')) ?? 1,
    failTimeout: optional(f.get('fail_timeout'), (c) => readDuration(r, c, false)) ?? 10_000,
    healthCheck: optional(f.get('health_check'), (c) => readHealthCheck(r, c)) ?? null,
    queue,
    retry: optional(f.get('retry'), (c) => readRetry(r, c)) ?? DEFAULT_RETRY,
  };
}

function readHealthCheck(r: Reader, cur: Cursor): HealthCheckConfig | undefined {
  const f = r.fields(cur, HEALTH_KEYS);
  if (f === undefined) return undefined;
  const path = optional(f.required('path'), (c) => {
    const p = r.string(c);
    if (p === undefined) return undefined;
    return /^\/[\x21-\x7e]*$/.test(p) ? p : r.mismatch(c, 'a path starting with "/", without spaces');
  });
  const count = (c: Cursor) => r.integer(c, 1, 1000, 'an integer from 1 to 1000');
  const check = {
    path,
    interval: optional(f.get('interval'), (c) => readDuration(r, c, false)) ?? 5_000,
    timeout: optional(f.get('timeout'), (c) => readDuration(r, c, false)) ?? 2_000,
    expect: optional(f.get('expect'), (c) => readExpect(r, c)) ?? DEFAULT_EXPECT,
    fails: optional(f.get('fails'), count) ?? 1,
    passes: optional(f.get('passes'), count) ?? 1,
  };
  return path === undefined ? undefined : { ...check, path };
}

/** `200`, `2xx`, or a list of those. */
function readExpect(r: Reader, cur: Cursor): (readonly [number, number])[] | undefined {
  const items = isSeq(cur.node) ? r.list(cur, 'status') : [cur];
  if (items === undefined) return undefined;
  const out: (readonly [number, number])[] = [];
  for (const item of items) {
    const range = r.parse(item, STATUS_FORMAT, parseStatusRange);
    if (range !== undefined) out.push(range);
  }
  return out.length === items.length ? out : undefined;
}

export function parseStatusRange(input: string | number): Parsed<readonly [number, number]> {
  const text = String(input).toLowerCase();
  if (/^[1-5]xx$/.test(text)) {
    const base = Number(text[0]) * 100;
    return parsed([base, base + 99] as const);
  }
  if (/^[1-5]\d\d$/.test(text)) return parsed([Number(text), Number(text)] as const);
  return expected(STATUS_FORMAT, input);
}
