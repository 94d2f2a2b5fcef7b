/**
 * @module systemd integration without native addons: notifications through the `systemd-notify` command
 * (Node has no unix datagram sockets), and socket activation (LISTEN_FDS) read into `{ address key: fd }`.
 */
import { execFile } from 'node:child_process';

/** Send `KEY=value` lines to NOTIFY_SOCKET. Returns when systemd-notify is done; never throws. */
export function notify(fields: Record<string, string>, log: (msg: string) => void): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  // --pid makes systemd-notify add MAINPID (and, as root, send with that pid's credentials): only when the
  // main process is what we announce, or a stray old master could claim MAINPID back.
  const args = fields.MAINPID ? [`--pid=${fields.MAINPID}`] : [];
  for (const [k, v] of Object.entries(fields)) {
    if (k !== 'MAINPID') args.push(`${k}=${v}`);
  }
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
