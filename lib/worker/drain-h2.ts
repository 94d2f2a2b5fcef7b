/**
 * @module HTTP/2 sessions during a drain (DESIGN §4): every session, idle ones included, gets the two-phase GOAWAY;
 * and a session over an H2Port gets the client's address.
 */
import type http2 from 'node:http2';
import { NGHTTP2_NO_ERROR } from './h2-codes.js';
import { H2Port } from './h2-port.js';
import { sessionSocket, setPeer } from '../util/internals.js';

const MAX_STREAM_ID = 2 ** 31 - 1;

const kSessions = Symbol('baton.sessions');
type TrackedSession = http2.ServerHttp2Session & { [kSessions]?: Set<http2.ServerHttp2Session> };

/**
 * A session over an H2Port sees a JSStreamSocket, which knows no addresses: give it the client's, which the
 * request handler reads through `req.socket` (X-Forwarded-For, X-Forwarded-Proto, the access log). Values, not
 * getters: they do not change, and getters would cost five closures per connection.
 */
export function exposeClient(session: http2.ServerHttp2Session): void {
  const port = H2Port.of(session);
  if (!port) return;
  const js = sessionSocket(session)! as { encrypted?: boolean; alpnProtocol?: string | false };
  setPeer(js, port.remoteAddress, port.remotePort, port.remoteFamily);
  js.encrypted = port.encrypted;
  js.alpnProtocol = port.alpnProtocol ?? false;
}

/** The HTTP/2 sessions of one worker, open now. */
export class Sessions {
  readonly #open = new Set<http2.ServerHttp2Session>();

  /** `graceMs`: between GOAWAY(2^31-1) and the final GOAWAY, about one round trip. */
  constructor(private readonly graceMs: number) {}

  get size(): number {
    return this.#open.size;
  }

  /** A new session; one that starts while the worker drains gets its GOAWAY at once. */
  add(session: TrackedSession, draining: boolean): void {
    this.#open.add(session);
    session[kSessions] = this.#open;
    session.once('close', onSessionClose);
    if (draining) this.#goaway(session);
  }

  goawayAll(): void {
    for (const session of this.#open) this.#goaway(session);
  }

  destroyAll(): void {
    for (const session of this.#open) session.destroy();
  }

  /**
   * RFC 9113 §6.8: a GOAWAY with the maximum stream id first, so streams the client opens meanwhile are still
   * served; about one round trip later the final GOAWAY with the real last stream id (session.close), after
   * which the session ends when its streams do. The first one is written by the session's H2Port (see there
   * why nghttp2 cannot send it); a session on a socket of its own gets nghttp2's GOAWAY, which refuses the
   * streams that cross it.
   */
  #goaway(session: http2.ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    if (!H2Port.of(session)?.notice()) {
      try {
        session.goaway(NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      } catch {
        /* the session is going away by itself */
      }
    }
    setTimeout(() => {
      if (!session.closed && !session.destroyed) session.close();
    }, this.graceMs).unref();
  }
}

// Shared by every session (`this` is the session): no closure per connection.
function onSessionClose(this: TrackedSession): void {
  this[kSessions]!.delete(this);
}
