/**
 * @module Moving a WebSocket tunnel to another worker, the mechanics: a tunnel moves only when nothing of it is
 * left in this process. Reads are held on both sockets (what arrives stays in the kernel and moves with the
 * descriptors); what was already read is written on to the other side by the pipes as usual; once both sockets have
 * nothing buffered either way and every write has reached the kernel, both descriptors are offered. A tunnel that
 * does not get there within the bound (a peer that does not read) resumes and stays. Nothing here may ever end a
 * socket: a shutdown would reach the peer through every copy of the descriptor.
 */
import net from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { holdReads, releaseReads } from '../util/internals.js';

/** How long a tunnel may take to flush what this process holds before it is left where it is. */
export const FLUSH_BOUND_MS = 2000;
const POLL_MS = 5;

/** A plain TCP socket (TLS state cannot move between processes). */
export function plainTcp(s: Duplex | null): s is net.Socket {
  return s instanceof net.Socket && (s as tls.TLSSocket).encrypted !== true && !s.destroyed;
}

/** Open both ways, and nothing of it in this process: no byte read and unwritten, no write short of the kernel. */
function settled(s: net.Socket): boolean {
  return s.readable && s.writable && !s.writableEnded && s.readableLength === 0 && s.writableLength === 0;
}

/**
 * Hold reads on both sockets and wait until both are settled. True: ready to move (reads still held). False: a
 * socket closed or ended meanwhile, or the bound passed; reads are released and the tunnel carries on here.
 */
export function quiesce(a: net.Socket, b: net.Socket, boundMs = FLUSH_BOUND_MS): Promise<boolean> {
  if (!holdReads(a) || !holdReads(b)) {
    releaseReads(a);
    releaseReads(b);
    return Promise.resolve(false);
  }
  const until = Date.now() + boundMs;
  return new Promise<boolean>((resolve) => {
    // First look after the current tick: an end of stream read before the hold is emitted by then.
    const check = () => {
      const closed = a.destroyed || b.destroyed || a.readableEnded || b.readableEnded || a.writableEnded || b.writableEnded;
      if (!closed && settled(a) && settled(b)) return resolve(true);
      if (closed || Date.now() > until) {
        releaseReads(a);
        releaseReads(b);
        return resolve(false);
      }
      setTimeout(check, POLL_MS);
    };
    setTimeout(check, 0);
  });
}

/** After a failed offer: the tunnel flows again in this process. */
export function resume(a: net.Socket, b: net.Socket): void {
  releaseReads(a);
  releaseReads(b);
}

/**
 * This process's copies of a moved tunnel's sockets go: the pipes are taken apart first, so that nothing of
 * the close reaches the other socket (a pipe ends its destination at its source's end), then each descriptor is
 * closed, which sends nothing on the wire while the receiver's copy lives.
 */
export function letGo(client: net.Socket, upstream: net.Socket): void {
  upstream.unpipe(client);
  client.unpipe(upstream);
  upstream.destroy();
  client.destroy();
}

/** The receiving side: a moved tunnel flows on between its two sockets, as http-proxy set it up in the first worker. */
export function pipeOn(client: net.Socket, upstream: net.Socket): void {
  for (const s of [client, upstream]) {
    s.setNoDelay(true);
    s.setKeepAlive(true, 0);
    s.setTimeout(0);
  }
  upstream.pipe(client);
  client.pipe(upstream);
}
