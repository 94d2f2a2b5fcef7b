/**
 * @module Default values that code outside the config loader needs too (workers use `DEFAULT_LIMITS`): a leaf,
 * so that importing a default does not pull the YAML parser into every worker.
 */
import type { ClientLimits } from './types.js';

export const DEFAULT_LIMITS: ClientLimits = Object.freeze({
  maxHeaderSize: 16 * 1024,
  maxHeaders: 100,
  // Bodies are streamed, never buffered: the limit protects upstreams, not our memory. 100m is a common edge
  // default (e.g. Cloudflare's); nginx's 1m breaks ordinary uploads.
  maxBodySize: 100 * 1024 * 1024,
  headerTimeout: 10_000,
  bodyTimeout: 60_000,
  keepaliveTimeout: 5_000,
  keepaliveRequests: 1000,
  // nginx's http2_max_concurrent_streams.
  http2MaxConcurrentStreams: 128,
  underscoresInHeaders: false,
  // nginx buffers request bodies by default: a slow upload then costs a client connection, never an upstream one.
  requestBuffering: true,
  requestBufferSize: 64 * 1024,
});

/** A route's rules when it states none: what hand-built configs (tests, scripts) spread into a RouteConfig. */
export const ROUTE_RULE_DEFAULTS = Object.freeze({
  scheme: null,
  redirect: null,
  access: null,
  requestHeaders: null,
  responseHeaders: null,
  upstreamHost: Object.freeze({ kind: 'preserve' as const }),
  stripPrefix: false,
  addPrefix: '',
  compress: true,
});
