/**
 * @module The `routes` section: host, path prefix and scheme, then exactly one action (an upstream, a fixed `return`
 * response or a `redirect`), and the route's rules: body limit, access (`allow` / `deny`), and for upstream routes
 * header rules, the Host sent upstream, path rewriting and compression.
 */
import { HOST_PATTERN_FORMAT, parseHostPattern } from '../../util/host-pattern.js';
import { parsed, type Parsed } from '../../util/parsed.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { RedirectAction, ReturnAction, RouteConfig } from '../types.js';
import { readAccess } from './cidrs.js';
import { readHeaderRules, readUpstreamHost } from './header-rules.js';
import { readBodySize } from './limits.js';
import { readRateLimit } from './rate-limit.js';
import { readRedirect } from './redirect.js';
import { readReturn } from './return.js';

const ACTIONS = ['upstream', 'return', 'redirect'] as const;
const SCHEMES = ['http', 'https'] as const;
/** Rules about what goes to and comes from an upstream: meaningless on a route that answers by itself. */
const UPSTREAM_ONLY = ['request_headers', 'response_headers', 'upstream_host', 'strip_prefix', 'add_prefix', 'compress'];
const KEYS = ['host', 'path', 'scheme', ...ACTIONS, 'max_body_size', 'rate_limit', 'allow', 'deny', ...UPSTREAM_ONLY];

/** `defaultMaxBody`: `limits.max_body_size`, for routes without their own. */
export function readRoutes(r: Reader, cur: Cursor, upstreams: ReadonlySet<string>, defaultMaxBody: number): RouteConfig[] {
  const routes: RouteConfig[] = [];
  const seen = new Map<string, string>();
  for (const item of r.list(cur, 'route') ?? []) {
    const f = r.fields(item, KEYS);
    if (f === undefined) continue;
    const hostCur = f.get('host');
    const host = hostCur === undefined ? null : r.parse(hostCur, HOST_PATTERN_FORMAT, parseRouteHost);
    const path = optional(f.get('path'), (c) => readPath(r, c, 'a path')) ?? '/';
    const scheme = optional(f.get('scheme'), (c) => r.oneOf(c, SCHEMES)) ?? null;
    const maxBodySize = optional(f.get('max_body_size'), (c) => readBodySize(r, c)) ?? defaultMaxBody;
    const rateLimit = optional(f.get('rate_limit'), (c) => readRateLimit(r, c)) ?? null;
    const given = ACTIONS.filter((a) => f.get(a) !== undefined);
    let upstream: string | undefined;
    let ret: ReturnAction | undefined;
    let redirect: RedirectAction | undefined;
    if (given.length > 1) r.fail(item.node, item.path, `expected exactly one of "upstream", "return" or "redirect", got ${given.map((g) => `"${g}"`).join(' and ')}`);
    else if (given[0] === 'upstream') upstream = readUpstreamName(r, f.get('upstream')!, upstreams);
    else if (given[0] === 'return') ret = readReturn(r, f.get('return')!);
    else if (given[0] === 'redirect') redirect = readRedirect(r, f.get('redirect')!);
    else r.fail(item.node, item.path, 'missing "upstream", "return" or "redirect"');
    if (given.length === 1 && given[0] !== 'upstream') {
      for (const key of UPSTREAM_ONLY) {
        const c = f.get(key);
        if (c !== undefined) r.fail(c.node, c.path, `only a route with an upstream has ${key} (this one has "${given[0]}")`);
      }
    }
    const access = readAccess(r, f);
    const requestHeaders = optional(f.get('request_headers'), (c) => readHeaderRules(r, c, 'request')) ?? null;
    const responseHeaders = optional(f.get('response_headers'), (c) => readHeaderRules(r, c, 'response')) ?? null;
    const upstreamHost = readUpstreamHost(r, f.get('upstream_host'));
    const stripPrefix = optional(f.get('strip_prefix'), (c) => r.bool(c)) ?? false;
    const addPrefix = optional(f.get('add_prefix'), (c) => readPrefix(r, c)) ?? '';
    const compress = optional(f.get('compress'), (c) => r.bool(c)) ?? true;

    if (host !== undefined) {
      // The router keeps one route per (scheme, host, path): a second one could never match.
      const key = `${scheme ?? '*'} ${host ?? '*'} ${path}`;
      const first = seen.get(key);
      if (first !== undefined) r.fail(item.node, item.path, `same host and path as ${first}`);
      else seen.set(key, item.path);
    }
    if (host !== undefined && (upstream !== undefined || ret !== undefined || redirect !== undefined)) {
      routes.push({
        host, path, scheme, upstream: upstream ?? null, return: ret ?? null, redirect: redirect ?? null, maxBodySize, rateLimit, access,
        requestHeaders, responseHeaders, upstreamHost, stripPrefix, addPrefix, compress,
      });
    }
  }
  return routes;
}

/** `*` alone means any host, stored as null like an absent host. */
function parseRouteHost(input: string | number): Parsed<string | null> {
  return input === '*' ? parsed(null) : parseHostPattern(input);
}

function readPath(r: Reader, cur: Cursor, what: string): string | undefined {
  const path = r.string(cur);
  if (path === undefined) return undefined;
  if (!/^\/[^\s?#]*$/.test(path)) return r.mismatch(cur, `${what} starting with "/", without spaces, "?" or "#"`);
  return path;
}

/** `add_prefix`: sent as it is, so only characters a request target may carry (percent-encode the rest). */
function readPrefix(r: Reader, cur: Cursor): string | undefined {
  const prefix = readPath(r, cur, 'a path');
  if (prefix === undefined) return undefined;
  if (!/^[\x21-\x7e]+$/.test(prefix)) return r.mismatch(cur, 'a path of visible ASCII characters (percent-encode the others)');
  return prefix;
}

function readUpstreamName(r: Reader, cur: Cursor, upstreams: ReadonlySet<string>): string | undefined {
  const name = r.string(cur);
  if (name === undefined) return undefined;
  return upstreams.has(name) ? name : r.fail(cur.node, cur.path, `unknown upstream ${JSON.stringify(name)}`);
}
