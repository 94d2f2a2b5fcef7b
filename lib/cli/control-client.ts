/**
 * @module What the CLI needs to talk to a running daemon: the admin URL from the config, HTTP calls to it,
 * and process inspection (children of a pid) for the upgrade choreography.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { Config } from '../config/types.js';

/** `http://host:port`, or `unix:/path` for an admin listener on a unix socket; null when it cannot be reached. */
export function adminBase(config: Config): string | null {
  const a = config.admin?.listen;
  if (a?.family === 'unix') return a.key;
  if (!a || a.port === 0) return null;
  const host = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '::1' : a.host;
  return a.family === 6 ? `http://[${host}]:${a.port}` : `http://${host}:${a.port}`;
}

export function adminCall(base: string, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const unix = base.startsWith('unix:') ? { socketPath: base.slice('unix:'.length), path, host: 'localhost' } : null;
    const onResponse = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    };
    const req = unix ? http.request({ ...unix, method, timeout: timeoutMs }, onResponse) : http.request(base + path, { method, timeout: timeoutMs }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${base}${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Pids whose parent is `pid` (Linux /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      // Field 4 is the ppid; the command name (field 2) may hold spaces, so split after its closing paren.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      /* the process left while we looked */
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` every 100 ms until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(timeoutMs: number, check: () => T | undefined | Promise<T | undefined>): Promise<T | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= end) return undefined;
    await sleep(100);
  }
}
