/**
 * @module Connection-level client limits the servers do not enforce themselves: the HTTP/2 header-pair bound,
 * the idle timeout of HTTP/2 sessions without streams (Node's session timeout fires once and also while streams
 * wait on a slow upstream), and the connection budget under the file descriptor limit. Request-level limits are
 * checked by admission (admission.ts) and while a body streams (request-body.ts).
 */
import fs from 'node:fs';
import type http2 from 'node:http2';
import type { ClientLimits } from '../config/types.js';

/** HTTP/2 servers refuse a stream (RST_STREAM ENHANCE_YOUR_CALM) past this many pairs; ours answers 431 first. */
export function h2MaxHeaderPairs(limits: ClientLimits): number {
  return limits.maxHeaders + 16;
}

const kIdle = Symbol('baton.h2idle');

interface SessionState {
  active: number;
  idleSince: number;
}

type TrackedSession = http2.ServerHttp2Session & { [kIdle]?: SessionState };
type TrackedStream = http2.ServerHttp2Stream & { [kIdle]?: SessionState };

function onStreamClose(this: TrackedStream): void {
  const st = this[kIdle];
  if (st === undefined) return;
  st.active--;
  st.idleSince = Date.now();
}

/**
 * `keepalive_timeout` for HTTP/2: a session with no open stream for that long gets a graceful GOAWAY
 * (`session.close()`). One sweep per server, no timer per session or stream.
 */
export function closeIdleSessions(server: http2.Http2Server | http2.Http2SecureServer, timeout: number): void {
  const sessions = new Set<TrackedSession>();
  let timer: NodeJS.Timeout | null = null;
  const sweep = () => {
    const now = Date.now();
    for (const s of sessions) {
      const st = s[kIdle]!;
      if (st.active > 0 || now - st.idleSince < timeout) continue;
      sessions.delete(s);
      if (!s.closed && !s.destroyed) s.close();
    }
    if (sessions.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
  server.on('session', (session: TrackedSession) => {
    session[kIdle] = { active: 0, idleSince: Date.now() };
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (timer === null) {
      timer = setInterval(sweep, Math.max(100, Math.min(1000, Math.floor(timeout / 4))));
      timer.unref();
    }
  });
  server.on('stream', (stream: TrackedStream) => {
    const st = (stream.session as TrackedSession | undefined)?.[kIdle];
    if (st === undefined) return;
    st.active++;
    stream[kIdle] = st;
    stream.once('close', onStreamClose);
  });
}

/** File descriptors kept back for log files, health checks, DNS, Node itself. */
const FD_RESERVE = 32;

/**
 * How many client connections one server of this worker may hold before new ones are closed at once
 * (`server.maxConnections`): half of the file descriptors left under the soft RLIMIT_NOFILE, since a proxied
 * client may need an upstream connection too, minus a reserve. Without it, a worker at its fd limit keeps
 * accepting (libuv's reserve-fd trick closes the excess, so it does not spin) but then cannot open the upstream
 * connections its accepted clients need: every request would fail. null when the limit is unknown or unlimited.
 */
export function connectionBudget(): number | null {
  let limits: string;
  try {
    limits = fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (m === null || m[1] === 'unlimited') return null;
  let open = 0;
  try {
    open = fs.readdirSync('/proc/self/fd').length;
  } catch {
    /* not Linux: count nothing */
  }
  return Math.max(1, Math.floor((Number(m[1]) - open - FD_RESERVE) / 2));
}
