/**
 * @module Fakes at the master's process and socket boundary for its unit tests: a config, child processes that
 * the test drives (spawn, ready, stats, exit, spawn failures), raw listening handles, and a recording world.
 */
import { EventEmitter } from 'node:events';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { Config } from '../../../lib/config/types.js';
import { DEFAULT_LIMITS } from '../../../lib/config/sections/limits.js';
import { ROUTE_RULE_DEFAULTS } from '../../../lib/config/defaults.js';
import type { RawHandle } from '../../../lib/master/listeners.js';
import type { SpawnProcess } from '../../../lib/master/worker-handle.js';

export function masterConfig(over: Partial<Config> = {}): Config {
  return {
    file: '/tmp/baton.yaml', pidFile: '/tmp/x.pid', workers: 2, shutdownTimeout: 30_000, upgradeTimeout: 60_000, user: null,
    log: { level: 'info', error: { kind: 'stderr' }, access: null, queryStrings: true }, admin: null,
    listeners: [{ address: { key: '127.0.0.1:8080', host: '127.0.0.1', port: 8080, family: 4 }, h2c: false, tls: null, proxyProtocol: false, mode: null, owner: null }],
    limits: DEFAULT_LIMITS,
    drain: { handoff: true },
    upstreams: {}, routes: [{ host: null, path: '/', upstream: null, return: { status: 200, body: '', headers: {} }, maxBodySize: 0, rateLimit: null, ...ROUTE_RULE_DEFAULTS }],
    trustedProxies: [], compression: null,
    ...over,
  };
}

let nextPid = 50_000;

/** A child process the test drives; what the code under test sends it is recorded. */
export class FakeChild extends EventEmitter {
  pid: number | undefined;
  connected = true;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly sent: unknown[] = [];
  readonly kills: string[] = [];

  constructor(readonly args: readonly string[], readonly options: SpawnOptions, spawned = true) {
    super();
    this.pid = spawned ? nextPid++ : undefined;
  }

  send(msg: unknown, cb?: (err: Error | null) => void): boolean {
    this.sent.push(msg);
    cb?.(null);
    return true;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.kills.push(signal);
    return true;
  }

  /** The worker says it is ready. */
  ready(): void {
    this.emit('message', { type: 'ready' });
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code;
    this.signalCode = signal;
    this.connected = false;
    this.emit('exit', code, signal);
  }
}

export type SpawnPlan = 'ok' | { error: string } | { throws: string };

/**
 * A fake `child_process.spawn`: each call takes the next plan (default 'ok'). `{ error }` is Node's ENOENT /
 * EAGAIN case (an 'error' event, no pid, no 'exit'); `{ throws }` is its EBADF / EINVAL case (a synchronous throw).
 */
export function fakeSpawn(plans: SpawnPlan[] = []): { spawn: SpawnProcess; children: FakeChild[] } {
  const children: FakeChild[] = [];
  const spawn = (_cmd: string, args: readonly string[], options: SpawnOptions): ChildProcess => {
    const plan = plans.shift() ?? 'ok';
    if (typeof plan === 'object' && 'throws' in plan) throw Object.assign(new Error(`spawn ${plan.throws}`), { code: plan.throws });
    const child = new FakeChild(args, options, plan === 'ok');
    children.push(child);
    if (typeof plan === 'object') {
      const code = plan.error;
      process.nextTick(() => {
        child.emit('error', Object.assign(new Error(`spawn ${process.execPath} ${code}`), { code }));
        child.connected = false;
        child.emit('close', -2, null);
      });
    }
    return child as unknown as ChildProcess;
  };
  return { spawn, children };
}

/** A raw handle as `net._createServerHandle` returns it, without a socket behind it. */
export class FakeHandle implements RawHandle {
  closed = false;
  constructor(readonly fd: number, readonly address: string, readonly port: number) {}
  close(): void {
    this.closed = true;
  }
  getsockname(out: Record<string, unknown>): number {
    out.address = this.address;
    out.port = this.port;
    out.family = 'IPv4';
    return 0;
  }
}

/** Wait until `check` holds, polling every 5 ms for at most 10 s (no assertion on how long it took). */
export async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened: ${what}`);
}
