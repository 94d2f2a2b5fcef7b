/** @module The `routes` section: host and path prefix, then either an upstream or a fixed `return` response. */
import { HOST_PATTERN_FORMAT, parseHostPattern } from '../../util/host-pattern.js';
import { parsed, type Parsed } from '../../util/parsed.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { ReturnAction, RouteConfig } from '../types.js';
import { readReturn } from './return.js';
import { readBodySize } from './limits.js';
import { readRateLimit } from './rate-limit.js';

/** `defaultMaxBody`: `limits.max_body_size`, for routes without their own. */
export function readRoutes(r: Reader, cur: Cursor, upstreams: ReadonlySet<string>, defaultMaxBody: number): RouteConfig[] {
  const routes: RouteConfig[] = [];
  const seen = new Map<string, string>();
  for (const item of r.list(cur, 'route') ?? []) {
    const f = r.fields(item, ['host', 'path', 'upstream', 'return', 'max_body_size', 'rate_limit']);
    if (f === undefined) continue;
    const hostCur = f.get('host');
    const host = hostCur === undefined ? null : r.parse(hostCur, HOST_PATTERN_FORMAT, parseRouteHost);
    const path = optional(f.get('path'), (c) => readPath(r, c)) ?? '/';
    const maxBodySize = optional(f.get('max_body_size'), (c) => readBodySize(r, c)) ?? defaultMaxBody;
    const rateLimit = optional(f.get('rate_limit'), (c) => readRateLimit(r, c)) ?? null;
    const upstreamCur = f.get('upstream');
    const returnCur = f.get('return');
    let upstream: string | undefined;
    let action: ReturnAction | undefined;
    if (upstreamCur !== undefined && returnCur !== undefined) r.fail(item.node, item.path, 'expected either "upstream" or "return", not both');
    else if (upstreamCur !== undefined) upstream = readUpstreamName(r, upstreamCur, upstreams);
    else if (returnCur !== undefined) action = readReturn(r, returnCur);
    else r.fail(item.node, item.path, 'missing "upstream" or "return"');

    if (host !== undefined) {
      // The router keeps one route per (host, path): a second one could never match.
      const key = `${host ?? '*'} ${path}`;
      const first = seen.get(key);
      if (first !== undefined) r.fail(item.node, item.path, `same host and path as ${first}`);
      else seen.set(key, item.path);
    }
    if (host !== undefined && (upstream !== undefined || action !== undefined)) {
      routes.push({ host, path, upstream: upstream ?? null, return: action ?? null, maxBodySize, rateLimit });
    }
  }
  return routes;
}

/** `*` alone means any host, stored as null like an absent host. */
function parseRouteHost(input: string | number): Parsed<string | null> {
  return input === '*' ? parsed(null) : parseHostPattern(input);
}

function readPath(r: Reader, cur: Cursor): string | undefined {
  const path = r.string(cur);
  if (path === undefined) return undefined;
  if (!/^\/[^\s?#]*$/.test(path)) return r.mismatch(cur, 'a path starting with "/", without spaces, "?" or "#"');
  return path;
}

function readUpstreamName(r: Reader, cur: Cursor, upstreams: ReadonlySet<string>): string | undefined {
  const name = r.string(cur);
  if (name === undefined) return undefined;
  return upstreams.has(name) ? name : r.fail(cur.node, cur.path, `unknown upstream ${JSON.stringify(name)}`);
}
