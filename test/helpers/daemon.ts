/**
 * @module Test harness in the spirit of nginx's Test::Nginx: a temp dir, a config written from a template,
 * the real bin/baton started in it, helpers to wait on files and log lines, and a teardown that stops every
 * process it started and asserts the error log holds no fatal lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(fileURLToPath(import.meta.url), '../../../..');
export const BIN = path.join(ROOT, 'bin/baton');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Is `pid` a live process (zombies, which only wait for their parent to reap them, count as gone)? */
export function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Poll until `check` returns a value (not undefined), or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export interface Tap {
  teardown(fn: () => unknown): void;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** tap's processinfo hook as tap writes it into NODE_OPTIONS: `"--import=file:///.../@tapjs/processinfo/..."`. */
const TAP_HOOK = /^"?--(import|loader|experimental-loader)=\S*@tapjs\/processinfo\//;

/**
 * `cmd args` as a command line that runs without tap's processinfo hook. tap puts the hook into NODE_OPTIONS of
 * every process a test starts, and back into any environment a test passes; it records data for coverage, which
 * is off here. On Node 20 and 22 its loader runs in a thread of its own and sees every module each baton master,
 * worker and CLI loads, which about doubles the CPU they take to start. `env` runs `cmd` with NODE_OPTIONS as
 * the test meant it: `nodeOptions` (or ours) without the hook.
 */
export function withoutTapHook(cmd: string, args: string[], nodeOptions = process.env.NODE_OPTIONS ?? ''): [string, string[]] {
  const kept = nodeOptions.split(/\s+/).filter((o) => o && !TAP_HOOK.test(o)).join(' ');
  return ['env', [...(kept ? [`NODE_OPTIONS=${kept}`] : ['-u', 'NODE_OPTIONS']), cmd, ...args]];
}

/** Run bin/baton to completion (for -t, -s, -v, reload, upgrade, status). */
export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(...withoutTapHook(process.execPath, [BIN, ...args]), { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`baton ${args.join(' ')} did not finish in time; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Config body sending every path to one upstream; `listeners` (YAML list items) defaults to one listener on a
 * port the OS picks.
 */
export function proxyAll(url: string, listeners = '  - listen: 127.0.0.1:0'): string {
  return `
listeners:
${listeners}
upstreams:
  app:
    targets: [{ url: "${url}" }]
routes:
  - path: /
    upstream: app
`;
}

export interface DaemonOptions {
  /** YAML for listeners, upstreams, routes (and any other key); `{{port}}` etc. are not substituted here. */
  body: string;
  /** Extra top-level YAML (workers, timeouts, log level). */
  top?: string;
  /** shutdown_timeout (default 10s). */
  shutdownTimeout?: string;
  workers?: number;
  /** Expect start-up to fail (do not wait for the pid file). */
  expectFailure?: boolean;
  /** Start from another copy of the package (upgrade tests change the code on disk). */
  bin?: string;
  /** A fixed admin port instead of port 0 (the CLI's reload/status need one). */
  adminPort?: number;
  /** The admin listener's whole `listen` value instead (`unix:admin.sock`). */
  adminListen?: string;
  /** Extra environment for the daemon (NOTIFY_SOCKET, ...). */
  env?: NodeJS.ProcessEnv;
  /** Run it through another command first (e.g. systemd-socket-activate ARGS...). */
  wrapper?: string[];
  /** The access log destination instead of `access.log` (a path, `stdout`, `off`). */
  access?: string;
  /** More keys of the `log:` section (YAML lines, indented by two spaces). */
  log?: string;
}

/**
 * Copy bin/, dist/ (without the compiled tests: the daemon never loads them, and they are a third of the files) and
 * package.json into `dir` (node_modules linked) so a test can change the code on disk.
 */
export function copyPackage(dir: string): string {
  const tests = path.join(ROOT, 'dist/test');
  fs.cpSync(path.join(ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true, filter: (from) => from !== tests });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return path.join(dir, 'bin/baton');
}

/** A port that was free a moment ago (only where a fixed port is unavoidable). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export class Daemon {
  readonly dir: string;
  readonly configFile: string;
  readonly pidFile: string;
  readonly errorLog: string;
  readonly accessLog: string;
  child: ChildProcess | null = null;
  stderr = '';
  stdout = '';

  constructor(t: Tap, prefix = 'baton-test-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.configFile = path.join(this.dir, 'baton.yaml');
    this.pidFile = path.join(this.dir, 'baton.pid');
    this.errorLog = path.join(this.dir, 'error.log');
    this.accessLog = path.join(this.dir, 'access.log');
    t.teardown(() => this.cleanup());
  }

  /** Write the config: pid file, logs and an admin listener on port 0 in the temp dir, plus `opts`. */
  writeConfig(opts: DaemonOptions): void {
    const yaml = [
      `pid_file: baton.pid`,
      `workers: ${opts.workers ?? 1}`,
      `shutdown_timeout: ${opts.shutdownTimeout ?? '10s'}`,
      opts.top ?? '',
      `log:`,
      `  level: debug`,
      `  error: error.log`,
      `  access: ${opts.access ?? 'access.log'}`,
      opts.log ?? '',
      `admin:`,
      // 127.0.0.2: a port-0 admin listener must not share the key of a port-0 listener on 127.0.0.1.
      `  listen: ${opts.adminListen ?? `127.0.0.2:${opts.adminPort ?? 0}`}`,
      opts.body,
    ].join('\n');
    fs.writeFileSync(this.configFile, yaml);
  }

  async start(opts: DaemonOptions): Promise<this> {
    this.writeConfig(opts);
    const node = withoutTapHook(process.execPath, [opts.bin ?? BIN, '-c', this.configFile], opts.env?.NODE_OPTIONS);
    const argv = [node[0], ...node[1]];
    const [cmd, ...args] = opts.wrapper ? [...opts.wrapper, ...argv] : argv;
    this.child = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    this.child.stdout!.on('data', (c) => { this.stdout += c; });
    this.child.stderr!.on('data', (c) => { this.stderr += c; });
    if (opts.expectFailure) return this;
    await waitFor('the pid file', 60_000, () => {
      if (this.child!.exitCode !== null) throw new Error(`baton exited with ${this.child!.exitCode}: ${this.stderr}${this.readLog()}`);
      return fs.existsSync(this.pidFile) ? true : undefined;
    });
    return this;
  }

  get masterPid(): number {
    return Number(fs.readFileSync(this.pidFile, 'utf8').trim());
  }

  /**
   * The pid the pid file names now, or null while there is none: during an upgrade the file is renamed to .oldbin
   * and written again, so a check-then-read (existsSync, then masterPid) can lose the race.
   */
  pidFromFile(file = this.pidFile): number | null {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** After USR2 to `old`: the pid of the new master, once the pid file names it. */
  newMasterPid(old: number, what = 'the new master', timeoutMs = 60_000): Promise<number> {
    return waitFor(what, timeoutMs, () => {
      const pid = this.pidFromFile();
      return pid !== null && pid !== old ? pid : undefined;
    });
  }

  readLog(file = this.errorLog): string {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  }

  /** Parsed JSON lines of a log file (lines that are not JSON are skipped). */
  lines(file = this.errorLog): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.readLog(file).split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* partial line being written */
      }
    }
    return out;
  }

  /** Wait for an error-log line matching `pred`, return it. */
  waitForLine(what: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000, file = this.errorLog): Promise<Record<string, unknown>> {
    return waitFor(what, timeoutMs, () => this.lines(file).find(pred));
  }

  /** The address (host:port) the admin listener has (config says port 0, so the OS picked the port). */
  async adminAddress(pid?: number): Promise<string> {
    const match = (l: Record<string, unknown>) => l.msg === 'admin listening' && (pid === undefined || l.pid === pid);
    await this.waitForLine('admin listening', match);
    // The last one: a master that takes the admin listener back after a rollback binds it anew.
    return String(this.lines().filter(match).at(-1)!.address);
  }

  /** The port the OS picked for listener `key` (e.g. `127.0.0.1:0`); the first such listener by default. */
  async port(key = '127.0.0.1:0'): Promise<number> {
    const line = await this.waitForLine(`listener ${key}`, (l) => l.msg === 'listening' && l.listener === key);
    return Number(String(line.address).split(':').pop());
  }

  async status(pid?: number): Promise<Record<string, unknown>> {
    const res = await fetch(`http://${await this.adminAddress(pid)}/status`);
    return (await res.json()) as Record<string, unknown>;
  }

  signal(sig: NodeJS.Signals, pid = this.masterPid): void {
    process.kill(pid, sig);
  }

  /** Live worker pids according to /proc (children of the master). */
  workerPids(master = this.masterPid): number[] {
    const out: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[1]) === master && fields[0] !== 'Z') out.push(Number(name));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  async waitForExit(timeoutMs = 20_000): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('baton did not exit in time')), timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Every process whose command line mentions our temp dir (masters, new masters, workers). */
  ownProcesses(): number[] {
    const out: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        const env = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
        if (env.includes(this.dir)) out.push(Number(name));
      } catch {
        /* gone */
      }
    }
    return out;
  }

  async cleanup(): Promise<void> {
    const masters = new Set(this.ownProcesses());
    if (this.child && this.child.exitCode === null && this.child.pid) masters.add(this.child.pid);
    const all = new Set(masters);
    for (const m of masters) for (const w of this.workerPids(m)) all.add(w);
    for (const p of all) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
    if (!process.env.BATON_TEST_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
