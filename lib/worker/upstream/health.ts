/**
 * @module Active health checks (`upstreams.NAME.health_check`): every worker checks every target of such an
 * upstream on its own. One timer per target, chained (the next check starts `interval` after the previous one
 * ended, so a slow target never has two checks in flight). Each check is a GET on a new connection (a client
 * without keep-alive), bounded as a whole by `timeout`; a status in `expect` passes, anything else (refused,
 * reset, timeout, other status) fails. `fails` consecutive failures take the target out, `passes` consecutive
 * passes bring it back; targets start in (a reload must not 502 until the first round of checks).
 *
 * Why per worker rather than in the master: a worker needs the verdict on its hot path (one field read), the
 * master has no upstream code at all, and N workers × targets / interval requests is negligible load. The
 * cost is that workers may disagree for up to one interval. Each worker pushes its view (`upstreamHealth`) to the
 * master with its stats; /status and /metrics merge them.
 */
import { undiciDispatchers } from '../../util/internals.js';
import type { HealthCheckConfig } from '../../config/types.js';
import type { TargetHealth, UpstreamHealth } from '../../ipc/messages.js';
import type { Logger } from '../../log/logger.js';
import { undiciConnect } from './connect.js';
import { H2Pool, type TargetPool } from './h2-pool.js';
import { setChecked, type Target, type Upstream } from './pools.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** One target as this worker sees it now: passive marks and active checks together. */
export function targetHealth(t: Target, now: number): TargetHealth {
  if (t.downUntil > now) return { target: t.address, state: 'down', since: iso(t.healthSince), reason: t.healthWhy ?? 'taken out' };
  // A passive mark that has expired without a response since: back since it expired.
  if (t.downUntil !== 0) return { target: t.address, state: 'up', since: iso(t.downUntil), reason: 'fail_timeout passed' };
  return { target: t.address, state: 'up', since: iso(t.healthSince), reason: t.healthWhy };
}

export function upstreamHealth(upstreams: Iterable<Upstream>, now: number): UpstreamHealth[] {
  const out: UpstreamHealth[] = [];
  for (const up of upstreams) out.push({ name: up.config.name, targets: up.targets.map((t) => targetHealth(t, now)) });
  return out;
}

const USER_AGENT = 'baton-health-check';
/** Read (and discard) at most this much of a check's response body. */
const MAX_BODY = 64 * 1024;

class TargetCheck {
  readonly #target: Target;
  readonly #conf: HealthCheckConfig;
  readonly #log: Logger;
  readonly #upstream: string;
  readonly #client: TargetPool;
  #timer: NodeJS.Timeout | null = null;
  #fails = 0;
  #passes = 0;
  #stopped = false;

  constructor(upstream: Upstream, target: Target, conf: HealthCheckConfig, log: Logger) {
    this.#target = target;
    this.#conf = conf;
    this.#log = log;
    this.#upstream = upstream.config.name;
    // A new connection per check (an idle kept-alive one says little about accepting), opened as requests
    // are: same TLS settings, unix socket, protocol.
    const up = upstream.config;
    this.#client = up.protocol === 'http2'
      ? new H2Pool({ ...up, keepaliveTimeout: 0, connectTimeout: conf.timeout, responseTimeout: conf.timeout, idleTimeout: conf.timeout }, target.endpoint)
      : new (undiciDispatchers().Client)(target.origin, {
        pipelining: 0,
        connect: undiciConnect(target.endpoint, conf.timeout),
        headersTimeout: conf.timeout,
        bodyTimeout: conf.timeout,
      });
  }

  start(delay: number): void {
    this.#schedule(delay);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#client.close().catch(() => {});
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#run().then((r) => this.#verdict(r), (err: Error) => this.#verdict({ ok: false, why: err.message }));
    }, delay);
    this.#timer.unref(); // checks never keep a worker alive
  }

  async #run(): Promise<{ ok: boolean; why: string }> {
    const conf = this.#conf;
    const status = await checkOnce(this.#client, conf.path, conf.timeout, this.#target.endpoint.kind === 'unix' ? 'localhost' : this.#target.address);
    if (typeof status !== 'number') return { ok: false, why: status };
    const ok = conf.expect.some(([lo, hi]) => status >= lo && status <= hi);
    return { ok, why: `status ${status}` };
  }

  #verdict(r: { ok: boolean; why: string }): void {
    if (this.#stopped) return;
    const t = this.#target;
    const conf = this.#conf;
    if (r.ok) {
      this.#fails = 0;
      this.#passes++;
      if (t.checkDown && this.#passes >= conf.passes) {
        setChecked(t, false, `${this.#passes} health check(s) passed: ${r.why}`);
        this.#log.warn({ upstream: this.#upstream, target: t.address, passes: this.#passes, result: r.why }, 'health check: target is back');
      }
    } else {
      this.#passes = 0;
      this.#fails++;
      if (!t.checkDown && this.#fails >= conf.fails) {
        setChecked(t, true, `${this.#fails} health check(s) failed: ${r.why}`);
        this.#log.error({ upstream: this.#upstream, target: t.address, fails: this.#fails, result: r.why }, 'health check: target taken out');
      } else if (!t.checkDown) {
        this.#log.warn({ upstream: this.#upstream, target: t.address, fails: this.#fails, result: r.why }, 'health check failed');
      }
    }
    this.#schedule(conf.interval);
  }
}

/**
 * One GET through `pool`, bounded as a whole by `timeout`: the status, or why there is none. The body is read
 * (at most MAX_BODY bytes, then the request is given up: the status is known).
 */
function checkOnce(pool: TargetPool, path: string, timeout: number, host: string): Promise<number | string> {
  return new Promise((resolve) => {
    let abort: ((err?: Error) => void) | null = null;
    let status = 0;
    let read = 0;
    let settled = false;
    const settle = (v: number | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const timer = setTimeout(() => {
      settle(`no answer within ${timeout} ms`);
      abort?.();
    }, timeout);
    pool.dispatch({ path, method: 'GET', headers: ['host', host, 'user-agent', USER_AGENT, 'accept', '*/*'] }, {
      onConnect: (a: (err?: Error) => void) => { abort = a; },
      onHeaders: (code: number) => {
        if (code >= 200) status = code;
        return true;
      },
      onData: (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_BODY) {
          settle(status);
          abort?.();
        }
        return true;
      },
      onComplete: () => settle(status),
      onError: (err: Error & { code?: string }) => settle(status !== 0 ? status : `${err.code ?? err.name}: ${err.message}`),
    } as unknown as Parameters<TargetPool['dispatch']>[1]);
  });
}

export class HealthChecks {
  readonly #checks: TargetCheck[] = [];

  constructor(upstreams: Iterable<Upstream>, log: Logger) {
    for (const up of upstreams) {
      const conf = up.config.healthCheck;
      if (conf === null) continue;
      for (const target of up.targets) this.#checks.push(new TargetCheck(up, target, conf, log));
    }
  }

  get size(): number {
    return this.#checks.length;
  }

  /** First round at once (spread over a few ms), then every `interval`. */
  start(): void {
    this.#checks.forEach((c, i) => c.start(Math.min(i * 5, 200)));
  }

  stop(): void {
    for (const c of this.#checks) c.stop();
  }
}
