/**
 * @module The sending side of a hand-off (DESIGN §4, "Hand-off"): a draining worker passes an idle cleartext HTTP/1.1
 * connection, or a WebSocket tunnel's two sockets, by descriptor to a serving worker through the master, instead of
 * closing them. Reads are held first (bytes that arrive stay in the kernel and move with the descriptor), then each
 * socket is sent with its handle; this process keeps its own copy of every descriptor until the answer. Taken: the
 * copies are closed (a close, not a shutdown: the receiver's copy keeps the connection, nothing is sent on the wire).
 * Failed (the receiver never read it): reads resume and the connection drains here as it would have. Unknown: the
 * copies are closed and the connection is never served here again, since someone else may be serving it.
 */
import type net from 'node:net';
import type { HandoffFailure, HandoffKind, HandoffOffer, HandoffPeer, HandoffResult, TunnelState } from '../ipc/messages.js';
import { recorder } from '../metrics/recorder.js';
import { currentResponse, holdReads, parserIdle, releaseReads, streamHandle } from '../util/internals.js';
import type { MoveResult } from './drain.js';
import { edgeReading, peerOf } from './proxy-protocol.js';

export type Outcome = HandoffResult['outcome'];

/** How long a sender waits for an answer before it stops trusting one will come (`unknown`). */
const ANSWER_TIMEOUT_MS = 15_000;

/**
 * Hand-offs in flight at once per worker. Each descriptor crosses the IPC channels one at a time (Node waits for the
 * receiving process to acknowledge each), so more in flight only makes them wait in line, reads held: a connection
 * is held only once its turn comes, and a WebSocket is paused for about one round trip, not for the whole drain.
 */
export const WINDOW = 16;

/** The IPC channel to the master (`process`), or a fake in tests. */
export interface Channel {
  readonly connected: boolean;
  send(msg: HandoffOffer, handle: unknown, cb: (err: Error | null) => void): void;
}

interface Pending {
  readonly kind: HandoffKind;
  readonly resolve: (r: HandoffResult) => void;
  readonly timer: NodeJS.Timeout;
}

/** What this worker handed over, and what stayed (by reason), for the log line when it leaves. */
export interface HandoffTally {
  readonly moved: Record<HandoffKind, number>;
  readonly stayed: Partial<Record<HandoffFailure, number>>;
}

/**
 * An HTTP/1 connection is idle when its last response is finished and written, and no byte of a next request is in
 * this process: none read at all, or the parser has not begun a message (a partial request line stays and is served
 * here, with Connection: close).
 */
export function idleHttp1(socket: net.Socket): boolean {
  if (socket.destroyed || !socket.writable || socket.writableEnded || socket.readableEnded) return false;
  if (socket.readableLength !== 0 || socket.writableLength !== 0 || currentResponse(socket) !== null) return false;
  return socket.bytesRead === 0 || parserIdle(socket);
}

export class HandoffSender {
  readonly #channel: Channel;
  readonly #keys = new Map<net.Server, string>();
  readonly #pending = new Map<string, Pending>();
  #seq = 0;
  #free = WINDOW;
  readonly #waiting: Array<() => void> = [];
  readonly tally: HandoffTally = { moved: { http1: 0, websocket: 0 }, stayed: {} };

  constructor(channel: Channel) {
    this.#channel = channel;
  }

  /** `server` serves the listener `key`; only cleartext listeners are registered. */
  listen(server: net.Server, key: string): void {
    this.#keys.set(server, key);
  }

  keyOf(server: net.Server | null): string | null {
    return server === null ? null : this.#keys.get(server) ?? null;
  }

  /** Wait for a place in the window; the function returned gives it back. */
  async turn(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }

  /** The Drainer's mover: an idle cleartext HTTP/1 connection leaves this process, or stays (see MoveResult). */
  async move(socket: net.Socket, server: net.Server): Promise<MoveResult> {
    const listener = this.#keys.get(server);
    if (listener === undefined || streamHandle(socket) === null) return 'failed';
    // Not idle yet: its PROXY header has not arrived whole (a header read never starts again, so no window slot
    // is taken to find that out).
    if (edgeReading(socket)) return 'busy';
    const done = await this.turn();
    try {
      // Looked at only now: until its turn the connection was served as usual.
      if (socket.destroyed) return 'failed';
      if (!idleHttp1(socket) || !holdReads(socket)) return 'busy';
      const known = peerOf(socket);
      const peer: HandoffPeer | undefined = known === null ? undefined : { address: known.address, family: known.family, ...(known.port === undefined ? {} : { port: known.port }) };
      const result = await this.offer('http1', listener, [socket], undefined, peer);
      if (result.outcome === 'failed') {
        releaseReads(socket);
        return 'failed';
      }
      socket.destroy();
      return 'moved';
    } finally {
      done();
    }
  }

  /**
   * Send `sockets` (their reads already held) as the parts of one hand-off, and wait for the answer. The
   * sockets are left as they are: closing this process's copies, or resuming, is the caller's.
   */
  offer(kind: HandoffKind, listener: string, sockets: readonly net.Socket[], tunnel?: TunnelState, peer?: HandoffPeer): Promise<HandoffResult> {
    const id = `${process.pid}:${++this.#seq}`;
    return new Promise<HandoffResult>((resolve) => {
      const timer = setTimeout(() => this.settle({ type: 'handoff-result', id, outcome: 'unknown', reason: 'unknown' }), ANSWER_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(id, { kind, resolve, timer });
      const handles = sockets.map((s) => streamHandle(s));
      if (!this.#channel.connected || handles.some((h) => h === null)) {
        this.settle({ type: 'handoff-result', id, outcome: 'failed', reason: 'ipc' });
        return;
      }
      handles.forEach((handle, part) => {
        const msg: HandoffOffer = { type: 'handoff', id, kind, listener, part, parts: handles.length, ...(part === handles.length - 1 && tunnel ? { tunnel } : {}), ...(part === handles.length - 1 && peer ? { peer } : {}) };
        // An error here means the message was not written: nobody can have the descriptor but us.
        this.#channel.send(msg, handle, (err) => {
          if (err) this.settle({ type: 'handoff-result', id, outcome: 'failed', reason: 'ipc' });
        });
      });
    });
  }

  /** The answer for one hand-off (from the master), or our own verdict; the first one counts. */
  settle(result: HandoffResult): void {
    const p = this.#pending.get(result.id);
    if (p === undefined) return;
    this.#pending.delete(result.id);
    clearTimeout(p.timer);
    if (result.outcome === 'taken') {
      this.tally.moved[p.kind]++;
      recorder.handoff(p.kind);
    } else {
      this.tally.stayed[result.reason] = (this.tally.stayed[result.reason] ?? 0) + 1;
      recorder.handoffFailure(p.kind, result.reason);
    }
    p.resolve(result);
  }

  /** Count a connection that could not even be offered (a tunnel that would not flush). */
  stayed(kind: HandoffKind, reason: HandoffFailure): void {
    this.tally.stayed[reason] = (this.tally.stayed[reason] ?? 0) + 1;
    recorder.handoffFailure(kind, reason);
  }

  /** The channel to the master closed: no answer will come; whoever may have the connections keeps them. */
  disconnected(): void {
    for (const id of [...this.#pending.keys()]) this.settle({ type: 'handoff-result', id, outcome: 'unknown', reason: 'unknown' });
  }

  get pending(): number {
    return this.#pending.size;
  }
}
