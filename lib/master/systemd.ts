/**
 * @module systemd integration without native addons: notifications through the `systemd-notify` command
 * (Node has no unix datagram sockets), and socket activation (LISTEN_FDS) read into `{ address key: fd }`.
 */
import { execFile } from 'node:child_process';

/** Send `KEY=value` lines to NOTIFY_SOCKET. Returns when systemd-notify is done; never throws. */
export function notify(fields: Record<string, string>, log: (msg: string) => void): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  const args = [`--pid=${fields.MAINPID ?? process.pid}`];
  for (const [k, v] of Object.entries(fields)) {
    if (k !== 'MAINPID') args.push(`${k}=${v}`);
  }
  if (fields.MAINPID) args.push(`MAINPID=${fields.MAINPID}`);
  return new Promise((resolve) => {
    execFile('systemd-notify', args, { timeout: 5000 }, (err) => {
      if (err) log(`systemd-notify ${args.join(' ')} failed: ${err.message}`);
      resolve();
    });
  });
}

/**
 * Socket activation: the fds systemd passed to this pid (3 .. 3+LISTEN_FDS-1). The variables are removed so
 * workers and a future new master never mistake them for their own.
 */
export function activatedFds(): number[] {
  const count = Number(process.env.LISTEN_FDS);
  const pid = Number(process.env.LISTEN_PID);
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDNAMES;
  if (!Number.isInteger(count) || count <= 0 || pid !== process.pid) return [];
  return Array.from({ length: count }, (_, i) => 3 + i);
}
