/**
 * @module What a Drainer works with, apart from its bookkeeping (drain.ts): its timings, the server events that
 * begin a request or take a socket over, and the Mover that hands idle connections to another worker.
 */
import type { EventEmitter } from 'node:events';
import type net from 'node:net';

export interface DrainTimings {
  /** An idle keep-alive connection is closed once it has been quiet this long after drain started. */
  readonly quietMs: number;
  /** After our FIN, how long the peer gets to close its side before the socket is destroyed. */
  readonly lingerMs: number;
  /** Between GOAWAY(2^31-1) and the final GOAWAY: about one round trip, for streams already on the wire. */
  readonly goawayGraceMs: number;
}

export const TIMINGS: DrainTimings = { quietMs: 1000, lingerMs: 2000, goawayGraceMs: 300 };

/** moved: it left this process (its socket here is destroyed, the connection lives on); busy: not idle when its
 * turn came (a request is on its way: it is served here, then offered again); failed: it stays and drains here. */
export type MoveResult = 'moved' | 'busy' | 'failed';

/** Passes an idle cleartext HTTP/1 connection to a serving worker (handoff.ts). */
export interface Mover {
  move(socket: net.Socket, listener: net.Server): Promise<MoveResult>;
}

/**
 * The events by which an HTTP/1 server hands a request to its listeners, one per request: 'request', or instead
 * 'checkContinue' (`Expect: 100-continue`) or 'checkExpectation' (any other `Expect`). Missing one would take a
 * connection with a request in flight for idle.
 */
export const REQUEST_EVENTS = ['request', 'checkContinue', 'checkExpectation'] as const;
/** The events by which a socket leaves the HTTP/1 parser for good (a tunnel): never idle, never ours to close. */
export const TAKEOVER_EVENTS = ['upgrade', 'connect'] as const;

/** The servers that parse connections, as far as a Drainer is concerned: they emit the request events and 'session'. */
export type Parser = Pick<EventEmitter, 'on'>;
