/**
 * @module What each route does, compiled once per config (indexed like `config.routes`): its local answer (a
 * `return` or a `redirect`) or its upstream, and its rules, each null when the route does not use it, so that a
 * rule costs a request nothing unless its route has it.
 */
import type { Config } from '../config/types.js';
import { AccessList } from './access.js';
import { Compression } from './compress.js';
import { compileHeaderRules, type CompiledHeaderRules } from './header-rules.js';
import { compilePathRules, type PathRules } from './path-rules.js';
import { compileRedirect, compileReturn, type CompiledReturn } from './respond.js';
import type { Upstream } from './upstream/pools.js';

export interface RouteAction {
  /** A `return` or a `redirect`: answered locally. */
  readonly ret: CompiledReturn | null;
  readonly upstream: Upstream | null;
  /** Request body limit in bytes; 0 = none. */
  readonly maxBodySize: number;
  readonly access: AccessList | null;
  /** `request_headers` and `upstream_host`. */
  readonly request: CompiledHeaderRules | null;
  /** `strip_prefix` and `add_prefix`. */
  readonly paths: PathRules | null;
  readonly response: CompiledHeaderRules | null;
  /** The top-level `compression`, unless the route says `compress: false`. */
  readonly compress: Compression | null;
}

export function compileActions(config: Config, upstreams: ReadonlyMap<string, Upstream>): RouteAction[] {
  const compression = config.compression === null ? null : new Compression(config.compression);
  return config.routes.map((r) => ({
    ret: r.return !== null ? compileReturn(r.return) : r.redirect !== null ? compileRedirect(r.redirect) : null,
    upstream: r.upstream !== null ? upstreams.get(r.upstream) ?? null : null,
    maxBodySize: r.maxBodySize,
    access: r.access === null ? null : new AccessList(r.access),
    request: compileHeaderRules(r.requestHeaders, r.upstreamHost),
    paths: compilePathRules(r.path, r.stripPrefix, r.addPrefix),
    response: compileHeaderRules(r.responseHeaders),
    compress: r.compress ? compression : null,
  }));
}
