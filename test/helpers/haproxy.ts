/**
 * @module HAProxy (Debian's) as a real PROXY-protocol sender in front of baton: TCP mode, one frontend per
 * backend server line, each on a port found free a moment before, connecting to baton from 127.0.0.3 so that
 * baton's TCP peer differs from the client the header names. Stopped at teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, waitFor, type Tap } from './daemon.js';

/** The address HAProxy connects to baton from (its `source`): not the client's. */
export const HAPROXY_SOURCE = '127.0.0.3';

export interface Frontend {
  /** `127.0.0.1:PORT`, or a unix socket path. */
  readonly to: string;
  /** `send-proxy`, `send-proxy-v2`, plus options, e.g. `send-proxy-v2 proxy-v2-options crc32c,unique-id`. */
  readonly send: string;
}

/** Start HAProxy with one frontend per `frontends` entry; returns the port of each, in order. */
export async function haproxy(t: Tap, dir: string, frontends: readonly Frontend[]): Promise<number[]> {
  const ports: number[] = [];
  const lines = [
    'global', '  log stderr format raw local0 err', '  maxconn 2000',
    'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s',
  ];
  for (const [i, f] of frontends.entries()) {
    const port = await freePort();
    ports.push(port);
    const source = f.to.startsWith('/') ? '' : ` source ${HAPROXY_SOURCE}`;
    lines.push(`frontend f${i}`, `  bind 127.0.0.1:${port}`, `  unique-id-format %{+X}o\\ %ci:%cp_%Ts_%rt`, `  default_backend b${i}`);
    lines.push(`backend b${i}`, `  server baton ${f.to} ${f.send}${source}`);
  }
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  // A machine without HAProxy: say so (spawn's 'error' would otherwise surface as an uncaught exception).
  let failed: Error | null = null;
  child.on('error', (err) => { failed = err; });
  child.stderr!.on('data', (c) => { stderr += c; });
  t.teardown(() => { child.kill('SIGKILL'); });
  await waitFor('haproxy listening', 20_000, async () => {
    if (failed !== null) throw new Error(`cannot start haproxy (installed by .ci/run): ${(failed as Error).message}`);
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr}`);
    return (await Promise.all(ports.map(canConnect))).every(Boolean) ? true : undefined;
  });
  return ports;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
