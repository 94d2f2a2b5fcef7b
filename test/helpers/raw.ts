/**
 * @module Raw TCP clients for hostile-client tests: send exact bytes (optionally in timed pieces), collect
 * what comes back, and report how the connection ended (FIN from the server, RST, or still open at the
 * deadline). Every socket is bounded in time and destroyed at the end.
 */
import net from 'node:net';
import type { Upstream } from './http.js';

export interface RawResult {
  /** Everything received, latin1. */
  text: string;
  /** Status codes of the responses found in `text`, in order. */
  statuses: number[];
  /** The server closed (FIN or RST) before the deadline. */
  closed: boolean;
  /** The close was a reset (ECONNRESET / EPIPE on our side). */
  reset: boolean;
  /** ms from the first byte sent to the close (or the deadline). */
  ms: number;
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long; default 5 s. */
  timeoutMs?: number;
  /** Pause between pieces when `data` is a list. */
  gapMs?: number;
  /** Stop as soon as this holds (the socket is destroyed by us, `closed` stays false). */
  until?: (text: string) => boolean;
  /** Half-close after the last piece. */
  end?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
}

export function statusesOf(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

export function rawRequest(port: number, data: string | Buffer | (string | Buffer)[], opts: RawOptions = {}): Promise<RawResult> {
  const pieces = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const s = net.connect(port, opts.host ?? '127.0.0.1');
    const t0 = Date.now();
    let text = '';
    let reset = false;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text, statuses: statusesOf(text), closed, reset, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (opts.until?.(text)) finish(false);
    });
    s.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
      else if (err.code === 'ECONNREFUSED') text = `(connection refused)`;
    });
    s.on('close', () => finish(true));
    s.once('connect', async () => {
      for (let i = 0; i < pieces.length; i++) {
        if (done || s.destroyed) return;
        s.write(pieces[i]!);
        if (opts.gapMs && i < pieces.length - 1) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.end && !s.destroyed) s.end();
    });
  });
}

/** What an upstream saw: every request line, and the ones whose body ended cleanly. */
export interface Seen {
  started: string[];
  completed: string[];
  aborted: string[];
  /** Raw header lists, in arrival order. */
  headers: string[][];
}

/** Record every request an upstream gets (attach before the test's own handler answers). */
export function recordRequests(up: Upstream): Seen {
  const seen: Seen = { started: [], completed: [], aborted: [], headers: [] };
  up.server.prependListener('request', (req) => {
    const line = `${req.method} ${req.url}`;
    seen.started.push(line);
    seen.headers.push(req.rawHeaders);
    req.on('end', () => seen.completed.push(line));
    req.on('aborted', () => seen.aborted.push(line));
    req.on('error', () => { if (!seen.aborted.includes(line)) seen.aborted.push(line); });
  });
  return seen;
}
