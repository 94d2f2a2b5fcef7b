/**
 * @module Route selection: compiled once per config, then a pure `(hostname, path) → route` lookup.
 *
 * Matching rule (the config is a flat route list, not nginx `server` blocks): a route matches when its host
 * matches (exact name, `*.suffix`, or absent = any host) and its path is a prefix of the request path. Among
 * the matching routes the most specific *host* wins first (exact, then the longest wildcard, then host-less),
 * and within that host the longest path. So a host group without a matching path falls back to the next less
 * specific host group and finally to the host-less routes: a host-less route literally says "any host", and a
 * global `/healthz` or catch-all `/` keeps working for every host. An operator who wants a host to 404 outside
 * its paths adds `{host: that.host, path: /, return: {status: 404}}`. A route with a `scheme` matches only requests
 * that came over it (the HTTP→HTTPS redirect), and for the same path beats a route for both.
 */
import type { RouteConfig } from '../config/types.js';
import { routeLabel } from '../metrics/recorder.js';

export interface RouteEntry {
  /** Position in `config.routes`: callers keep per-route state in arrays indexed by it. */
  readonly index: number;
  readonly route: RouteConfig;
  /** `host` + `path` (or `*` + path for host-less routes), for logs. */
  readonly label: string;
}

export interface Router {
  /** `hostname` as returned by `normalizeHost`, `path` a routing path (see `routingPath`), `scheme` the listener's. */
  match(hostname: string, path: string, scheme?: 'http' | 'https'): RouteEntry | null;
}

/**
 * Routes of one host, longest path first; for one path a route for the request's scheme before one for both
 * (ties keep config order: the first one written wins).
 */
class PathTable {
  readonly #paths: string[] = [];
  readonly #schemes: ('http' | 'https' | null)[] = [];
  readonly #entries: RouteEntry[] = [];

  constructor(entries: RouteEntry[]) {
    const specific = (e: RouteEntry) => (e.route.scheme === null ? 1 : 0);
    const sorted = entries.slice().sort((a, b) => b.route.path.length - a.route.path.length || specific(a) - specific(b) || a.index - b.index);
    for (const e of sorted) {
      this.#paths.push(e.route.path);
      this.#schemes.push(e.route.scheme);
      this.#entries.push(e);
    }
  }

  match(path: string, scheme: 'http' | 'https'): RouteEntry | null {
    const paths = this.#paths;
    const schemes = this.#schemes;
    for (let i = 0; i < paths.length; i++) {
      if (path.startsWith(paths[i]!) && (schemes[i] === null || schemes[i] === scheme)) return this.#entries[i]!;
    }
    return null;
  }
}

export function compileRouter(routes: readonly RouteConfig[]): Router {
  const exact = new Map<string, RouteEntry[]>();
  const wild = new Map<string, RouteEntry[]>();
  const any: RouteEntry[] = [];
  routes.forEach((route, index) => {
    const host = route.host === null ? null : normalizeConfiguredHost(route.host);
    const entry: RouteEntry = { index, route, label: routeLabel(route) };
    if (host === null) any.push(entry);
    else if (host.startsWith('*.')) push(wild, host.slice(1), entry); // keep the dot: '.example.com'
    else push(exact, host, entry);
  });
  const exactTables = new Map<string, PathTable>();
  for (const [host, entries] of exact) exactTables.set(host, new PathTable(entries));
  const wildSuffixes = [...wild.keys()].sort((a, b) => b.length - a.length);
  const wildTables = wildSuffixes.map((s) => new PathTable(wild.get(s)!));
  const anyTable = any.length > 0 ? new PathTable(any) : null;

  return {
    match(hostname: string, path: string, scheme: 'http' | 'https' = 'http'): RouteEntry | null {
      if (exactTables.size > 0) {
        const t = exactTables.get(hostname);
        if (t !== undefined) {
          const hit = t.match(path, scheme);
          if (hit !== null) return hit;
        }
      }
      for (let i = 0; i < wildSuffixes.length; i++) {
        const suffix = wildSuffixes[i]!;
        // '*.example.com' matches 'a.example.com' and 'a.b.example.com', never 'example.com' itself.
        if (hostname.length > suffix.length && hostname.endsWith(suffix)) {
          const hit = wildTables[i]!.match(path, scheme);
          if (hit !== null) return hit;
        }
      }
      return anyTable === null ? null : anyTable.match(path, scheme);
    },
  };
}

function push(map: Map<string, RouteEntry[]>, key: string, entry: RouteEntry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

function normalizeConfiguredHost(host: string): string {
  return host.startsWith('*.') ? '*.' + normalizeHost(host.slice(2)) : normalizeHost(host);
}

/**
 * The routing name of a `Host` / `:authority` value: lower-case, port and a trailing dot removed, IPv6
 * brackets removed (`[::1]:8080` → `::1`). Returns '' for an empty or absent host.
 */
export function normalizeHost(authority: string): string {
  let host = authority;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    host = end === -1 ? host.slice(1) : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.charCodeAt(host.length - 1) === 46 /* . */) host = host.slice(0, -1);
  return host.toLowerCase();
}

/**
 * The path used for matching routes, from an origin-form request target: the query is cut off and, only when
 * the path could disguise itself (`%`, `/.`, `//`, `\`), it is decoded and normalized the way nginx normalizes
 * a URI before location matching. Without this `/public/../admin` or `/public/%2e%2e/admin` would be routed by
 * the `/public/` route while the upstream serves `/admin`. Path parameters (`/admin;x=1/`, which Tomcat and
 * Spring strip before routing) are cut from every segment, so `/admin;x/` is routed like `/admin/`: the
 * match can only get more specific, never escape a route. The request is still forwarded with its original
 * target. Returns null for a path that cannot be decoded or decodes to a NUL (→ 400).
 */
export function routingPath(target: string): string | null {
  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  if (path.indexOf('%') === -1 && path.indexOf('/.') === -1 && path.indexOf('//') === -1 && path.indexOf('\\') === -1 && path.indexOf(';') === -1) return path;
  if (path.indexOf('%') !== -1) {
    try {
      path = decodeURIComponent(path);
    } catch {
      return null;
    }
    if (path.indexOf('\0') !== -1) return null;
  }
  if (path.indexOf(';') !== -1) path = path.replace(/;[^/]*/g, '');
  return normalizeDotSegments(path.replace(/\\/g, '/'));
}

/** RFC 3986 §5.2.4 dot-segment removal plus merged slashes; never climbs above the root. */
function normalizeDotSegments(path: string): string {
  const out: string[] = [];
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    if (seg === '' || seg === '.') {
      if (i === parts.length - 1) out.push('');
      continue;
    }
    if (seg === '..') {
      out.pop();
      if (i === parts.length - 1) out.push('');
      continue;
    }
    out.push(seg);
  }
  return '/' + out.join('/');
}

/**
 * Split an absolute-form request target (`http://host:port/path?q`, sent to proxies) into its authority and
 * origin-form path. Returns null for anything else that does not start with '/' (`*`, garbage, userinfo).
 */
export function splitAbsoluteTarget(target: string): { authority: string; path: string } | null {
  let rest: string;
  if (target.startsWith('http://')) rest = target.slice(7);
  else if (target.startsWith('https://')) rest = target.slice(8);
  else return null;
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  const authority = rest.slice(0, end);
  if (authority === '' || authority.indexOf('@') !== -1) return null;
  let path = rest.slice(end);
  if (path === '' || path.charCodeAt(0) !== 47) path = '/' + path;
  return { authority, path };
}
