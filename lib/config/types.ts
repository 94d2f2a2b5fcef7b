/**
 * @module The normalized, frozen configuration: the one shape that `-t`, start, reload, the master and the
 * workers share. Everything here is plain data (JSON-serializable) so a snapshot can travel to workers over IPC.
 * Durations are milliseconds, sizes are bytes, paths are absolute.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Where a log goes: a file (reopened on USR1), or one of the standard streams. */
export type LogDestination =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stderr' }
  | { readonly kind: 'stdout' };

export interface LogConfig {
  readonly level: LogLevel;
  /** Error log of master and workers. Default: stderr. */
  readonly error: LogDestination;
  /** Access log, one JSON line per request; null when `off`. Default: stdout. */
  readonly access: LogDestination | null;
  /** Request targets in the logs keep their query string (`log.query_strings`); false logs the path alone. */
  readonly queryStrings: boolean;
}

/** A TCP address or a unix socket path as written in the config, normalized. */
export interface Address {
  /**
   * Canonical key: `127.0.0.1:80`, `[::]:443`, `0.0.0.0:8080`, `unix:/run/baton/http.sock`. Sockets are kept and
   * handed over by this key.
   */
  readonly key: string;
  /** Numeric host without brackets (`127.0.0.1`, `::`), or the socket file's absolute path. */
  readonly host: string;
  /** -1 for a unix socket. */
  readonly port: number;
  readonly family: 4 | 6 | 'unix';
}

export interface TlsCertificate {
  /** Absolute paths, kept for messages; the PEM text is read at load time so a bad file is a config error. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

export interface SniEntry extends TlsCertificate {
  /** Exact names and `*.suffix` wildcards, lower-cased. */
  readonly names: readonly string[];
}

export interface TlsConfig extends TlsCertificate {
  readonly sni: readonly SniEntry[];
}

export interface ListenerConfig {
  readonly address: Address;
  /** Also accept HTTP/2 with prior knowledge on this cleartext port. */
  readonly h2c: boolean;
  readonly tls: TlsConfig | null;
  /** Every connection starts with a PROXY protocol header (v1 or v2) naming the client; read before TLS or HTTP. */
  readonly proxyProtocol: boolean;
  /** A unix listener's socket file: permission bits (`0660` → 0o660), or null for what the umask gives. */
  readonly mode: number | null;
  /** A unix listener's socket file owner, `user` or `user:group`, or null to leave it to the master's user. */
  readonly owner: string | null;
}

export type Balance = 'round_robin' | 'least_conn' | 'random' | 'hash';

/** What `balance: hash` hashes: the client's address, a request header, a cookie, or the path (query included). */
export type HashKey =
  | { readonly kind: 'client_ip' }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'path' };

/** How baton talks to an upstream's targets: HTTP/1.1, or HTTP/2 (ALPN on https, prior knowledge otherwise). */
export type UpstreamProtocol = 'http1' | 'http2';

export interface TargetConfig {
  /** As written, e.g. `http://127.0.0.1:9001`, `https://api.internal:8443`, `unix:/run/app.sock`. */
  readonly url: string;
  /** `http://127.0.0.1:9001`: what the connection pool is keyed by (`http://localhost` for a unix socket). */
  readonly origin: string;
  /** The unix socket's absolute path, or null for TCP targets. */
  readonly socketPath: string | null;
  readonly weight: number;
  /** In-flight requests per worker (one connection each over HTTP/1.1); 0 = no cap. */
  readonly maxConnections: number;
}

/** `upstreams.NAME.tls`: how https targets are verified and what this side presents. PEM text read at load time. */
export interface UpstreamTlsConfig {
  /** Extra CA certificates (PEM) trusted besides the system's; null = the system CAs only. */
  readonly caFile: string | null;
  readonly ca: string | null;
  /** Client certificate and key for mTLS, or null. */
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly cert: string | null;
  readonly key: string | null;
  /** SNI and verification name; null = each target URL's host. */
  readonly serverName: string | null;
  /** false: no certificate verification at all (an explicit opt-out, logged at start). */
  readonly verify: boolean;
}

/** Requests over every target's `max_connections` wait here, at most `size` of them, each at most `timeout`; then 503. */
export interface QueueConfig {
  readonly size: number;
  readonly timeout: number;
}

export type RetryCondition = 'connect_failure' | 'reset' | 'timeout' | '502' | '503' | '504';

/** When a failed attempt is tried again (on the next target), nginx's `proxy_next_upstream` family. */
export interface RetryConfig {
  /** Attempts in all, the first included; 0 = the default rule (every target once after connect failures, one more try otherwise). */
  readonly tries: number;
  readonly on: readonly RetryCondition[];
  /** Methods whose requests may be retried after they may have reached the upstream (connect failures: any method). */
  readonly methods: readonly string[];
  /** No new attempt starts this long after the first one; 0 = no budget. */
  readonly timeout: number;
  /**
   * A request with a (buffered) body may be sent again after a failure that may have reached the upstream. False
   * without a `retry` key (the old rule: only requests without a body), true with one.
   */
  readonly replayBodies: boolean;
}

export interface UpstreamConfig {
  readonly name: string;
  readonly balance: Balance;
  /** `balance: hash` only; null otherwise. */
  readonly hashKey: HashKey | null;
  readonly protocol: UpstreamProtocol;
  readonly targets: readonly TargetConfig[];
  /** TLS settings for https targets; null = verify against the system CAs with the URL's host. */
  readonly tls: UpstreamTlsConfig | null;
  readonly connectTimeout: number;
  /** Until the response headers arrive. */
  readonly responseTimeout: number;
  /** Body inactivity in either direction. */
  readonly idleTimeout: number;
  /** How long an idle upstream connection is kept; keep below the upstream's own idle timeout. */
  readonly keepaliveTimeout: number;
  /** Passive health: this many failures within `failTimeout` take a target out for `failTimeout`; 0 = off. */
  readonly maxFails: number;
  readonly failTimeout: number;
  /** Active health checks, or null. */
  readonly healthCheck: HealthCheckConfig | null;
  /** Waiting room for requests over the targets' `max_connections`; null = 503 at once. */
  readonly queue: QueueConfig | null;
  readonly retry: RetryConfig;
}

/** Active health check of every target of an upstream, run by each worker. */
export interface HealthCheckConfig {
  /** Request path (GET), e.g. `/healthz`. */
  readonly path: string;
  /** Between the end of one check and the start of the next. */
  readonly interval: number;
  /** For the whole check: connect, headers and body. */
  readonly timeout: number;
  /** Passing statuses as inclusive ranges, e.g. [[200, 399]]. */
  readonly expect: readonly (readonly [number, number])[];
  /** Consecutive failed checks that take a target out. */
  readonly fails: number;
  /** Consecutive passed checks that bring it back. */
  readonly passes: number;
}

/** What a client may send and how long it may take; the defaults are in lib/config/sections/limits.ts. */
export interface ClientLimits {
  /** Request line and header block (HTTP/1.1) or header list (HTTP/2), bytes; more → 431. */
  readonly maxHeaderSize: number;
  /** Header fields per request; more → 431. */
  readonly maxHeaders: number;
  /** Request body bytes, the default of every route; 0 = no limit. More → 413. */
  readonly maxBodySize: number;
  /** To receive the request line and headers; then 408 and close (slowloris). */
  readonly headerTimeout: number;
  /** Request body inactivity; then 408 and close. 0 = none. */
  readonly bodyTimeout: number;
  /** An idle HTTP/1.1 keep-alive connection, or an HTTP/2 connection without streams, is closed after this. */
  readonly keepaliveTimeout: number;
  /** Requests per HTTP/1.1 connection; 0 = no limit. */
  readonly keepaliveRequests: number;
  /** HTTP/2 streams open at once per connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused. */
  readonly http2MaxConcurrentStreams: number;
  /** Forward request header names containing `_`; false (the default) drops them, as nginx does. */
  readonly underscoresInHeaders: boolean;
  /**
   * Read a request body whole before connecting upstream (nginx's `proxy_request_buffering on`), so that a slow
   * upload holds no upstream connection; gRPC requests always stream.
   */
  readonly requestBuffering: boolean;
  /** Bytes of a buffered body kept in memory; the rest goes to an unlinked temp file. */
  readonly requestBufferSize: number;
}

export interface ReturnAction {
  readonly status: number;
  readonly body: string;
  /** Extra response headers (lower-case names). `content-type` defaults to text/plain. */
  readonly headers: Readonly<Record<string, string>>;
}

/** A route's `rate_limit`, for the whole daemon: a token bucket of `burst + 1` tokens refilled at `perSecond`. */
export interface RateLimitConfig {
  /** As written: `100/s`. */
  readonly rate: string;
  readonly perSecond: number;
  /** Requests allowed at once above the rate (nginx's `burst`, with `nodelay`). */
  readonly burst: number;
  /** `client_ip`, or `header:name` (lower-case). */
  readonly key: string;
  /** rate, burst and key in one string: with the route's label, what names its buckets across reloads. */
  readonly spec: string;
}

/** A route's `redirect`: `to` is a template with request variables (lib/util/template.ts). */
export interface RedirectAction {
  readonly to: string;
  readonly status: 301 | 302 | 307 | 308;
}

/** `request_headers` / `response_headers` of a route; values are templates. Names as written, compared lower-cased. */
export interface HeaderRules {
  /** Replace every field of the name (or add it). */
  readonly set: readonly (readonly [name: string, value: string])[];
  /** One more field, the others kept. */
  readonly add: readonly (readonly [name: string, value: string])[];
  /** Lower-case names dropped. */
  readonly remove: readonly string[];
}

/** The Host sent upstream: the client's (`preserve`), the target's `host:port` (`target`), or a fixed name. */
export type UpstreamHost = { readonly kind: 'preserve' } | { readonly kind: 'target' } | { readonly kind: 'fixed'; readonly host: string };

/** One `allow` / `deny` entry; `cidr` is canonical (lib/util/cidr.ts), `all` included as two blocks. */
export interface AccessRule {
  readonly allow: boolean;
  readonly cidr: string;
}

export type CompressionAlgorithm = 'br' | 'gzip';

/** Top-level `compression`: absent = no response is compressed. */
export interface CompressionConfig {
  /** In order of preference when the client accepts several equally. */
  readonly algorithms: readonly CompressionAlgorithm[];
  /** Media types, lower-case: `text/html`, `text/*`, `application/*+json`. */
  readonly types: readonly string[];
  /** Responses with a smaller Content-Length are sent as they are. */
  readonly minSize: number;
}

export interface RouteConfig {
  /** Exact host, `*.suffix`, or null for any host. Lower-case, no port. */
  readonly host: string | null;
  /** Path prefix; the longest match wins. */
  readonly path: string;
  /** Only requests that came over this scheme (a cleartext or a TLS listener); null = both. */
  readonly scheme: 'http' | 'https' | null;
  /** Name of an upstream, or null for a `return` or `redirect` route. */
  readonly upstream: string | null;
  readonly return: ReturnAction | null;
  readonly redirect: RedirectAction | null;
  /** Request body limit in bytes (the route's `max_body_size`, else `limits.max_body_size`); 0 = none. */
  readonly maxBodySize: number;
  /** Requests over this rate get 429; null = unlimited. */
  readonly rateLimit: RateLimitConfig | null;
  /** `allow` / `deny` in the order written; null = everyone. */
  readonly access: readonly AccessRule[] | null;
  readonly requestHeaders: HeaderRules | null;
  readonly responseHeaders: HeaderRules | null;
  readonly upstreamHost: UpstreamHost;
  /** Remove the route's `path` from the forwarded path. */
  readonly stripPrefix: boolean;
  /** Prepended to the forwarded path; '' = none. */
  readonly addPrefix: string;
  /** Top-level `compression` applies (`compress: false` turns it off for this route). */
  readonly compress: boolean;
}

/** How a draining generation treats its connections (the `drain` section). */
export interface DrainConfig {
  /** Pass idle cleartext HTTP/1.1 connections and cleartext WebSocket tunnels to the new generation. */
  readonly handoff: boolean;
}

export interface AdminConfig {
  readonly listen: Address;
}

export interface Config {
  /** Absolute path of the config file this was loaded from. */
  readonly file: string;
  readonly pidFile: string;
  readonly workers: number;
  readonly shutdownTimeout: number;
  readonly upgradeTimeout: number;
  /** Workers drop to this user (and its primary group) when the master runs as root. */
  readonly user: string | null;
  readonly log: LogConfig;
  readonly admin: AdminConfig | null;
  readonly listeners: readonly ListenerConfig[];
  readonly limits: ClientLimits;
  readonly drain: DrainConfig;
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly routes: readonly RouteConfig[];
  /** Peers whose X-Forwarded-For is believed (canonical CIDR blocks); empty = none. */
  readonly trustedProxies: readonly string[];
  readonly compression: CompressionConfig | null;
}

/** One problem found in a config file, positioned on the node that caused it. */
export interface ConfigError {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  readonly message: string;
}

export type LoadResult =
  | { readonly ok: true; readonly config: Config }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };
