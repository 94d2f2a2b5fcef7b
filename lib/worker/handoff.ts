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
import { codeOrMessage } from '../util/error-text.js';
import { currentResponse, holdReads, parserIdle, releaseReads, streamHandle } from '../util/internals.js';
import type { MoveResult } from './drain.js';
import { edgeReading, peerOf } from './proxy-protocol.js';

export type Outcome = HandoffResult['outcome'];

/** How long a sender waits for an answer before it stops trusting one will come (`unknown`). */
const ANSWER_TIMEOUT_MS = 15_000;

/**
 * Hand-offs in flight at once per worker (from the hold of its reads to the answer): enough to keep the master's
 * relay and the receivers busy while the next descriptors cross this worker's channel.
 */
export const WINDOW = 16;

/**
 * Hand-offs of a worker whose descriptors may wait at once in its channel to the master. Node passes descriptors one
 * at a time per channel, each acknowledged by the other process before the next is written (measured under load:
 * 6 ms per descriptor at the median, 100 ms at p90): one or two in line keep the channel busy, more only keep
 * connections held (a request waiting in the kernel, a WebSocket standing still) without moving any sooner.
 */
export const CHANNEL_DEPTH = 3;

/** A place in the window, given by `turn()`. */
export interface Turn {
  /** Its descriptors are written to the channel (or will never be): the next hand-off may take their place there. */
  passed(): void;
  /** The hand-off is over (moved, stayed or given up): its place goes to the next. Idempotent, as is `passed`. */
  done(): void;
}

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

/** Where the hand-off's debug trace goes (the error log at level debug): each step of each offer, with its id. */
export type Trace = (fields: Record<string, unknown>, msg: string) => void;

export class HandoffSender {
  readonly #channel: Channel;
  /** Debug trace and warnings (a send that failed, with its code); set by the worker once its logs exist. */
  trace: Trace | null = null;
  warn: Trace | null = null;
  readonly #keys = new Map<net.Server, string>();
  readonly #pending = new Map<string, Pending>();
  #seq = 0;
  #free = WINDOW;
  /** Places in the channel (CHANNEL_DEPTH) not taken by a turn whose descriptors are not written yet. */
  #channelFree = CHANNEL_DEPTH;
  /** Turns waiting: tunnels first (their clients notice a pause), then idle HTTP/1 connections (they do not). */
  readonly #waiting: { readonly websocket: Array<(t: Turn) => void>; readonly http1: Array<(t: Turn) => void> } = { websocket: [], http1: [] };
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

  /**
   * Wait for a place in the window and in the channel (tunnels before HTTP/1 connections, each kind first come first
   * served); the Turn gives them back.
   */
  turn(kind: HandoffKind = 'http1'): Promise<Turn> {
    return new Promise<Turn>((resolve) => {
      this.#waiting[kind].push(resolve);
      this.#pump();
    });
  }

  /** Give the free places to the turns waiting, in order. */
  #pump(): void {
    while (this.#free > 0 && this.#channelFree > 0) {
      const next = this.#waiting.websocket.shift() ?? this.#waiting.http1.shift();
      if (next === undefined) return;
      this.#free--;
      this.#channelFree--;
      let passed = false;
      let done = false;
      const turn: Turn = {
        passed: () => {
          if (passed) return;
          passed = true;
          this.#channelFree++;
          this.#pump();
        },
        done: () => {
          if (done) return;
          done = true;
          this.#free++;
          if (!passed) {
            passed = true;
            this.#channelFree++;
          }
          this.#pump();
        },
      };
      next(turn);
    }
  }

  /** Turns waiting for a place (tests). */
  get waiting(): number {
    return this.#waiting.websocket.length + this.#waiting.http1.length;
  }

  /** The Drainer's mover: an idle cleartext HTTP/1 connection leaves this process, or stays (see MoveResult). */
  async move(socket: net.Socket, server: net.Server): Promise<MoveResult> {
    const listener = this.#keys.get(server);
    if (listener === undefined || streamHandle(socket) === null) return 'failed';
    // Not idle yet: its PROXY header has not arrived whole (a header read never starts again, so no window slot
    // is taken to find that out).
    if (edgeReading(socket)) return 'busy';
    const turn = await this.turn('http1');
    try {
      // Looked at only now: until its turn the connection was served as usual.
      if (socket.destroyed) return 'failed';
      if (!idleHttp1(socket) || !holdReads(socket)) return 'busy';
      // Its keep-alive timer must not close it while it is held (a request may be waiting in the kernel, unread):
      // the receiver arms its own; if it stays, the drain's quiet period closes it.
      socket.setTimeout(0);
      const known = peerOf(socket);
      const peer: HandoffPeer | undefined = known === null ? undefined : { address: known.address, family: known.family, ...(known.port === undefined ? {} : { port: known.port }) };
      const result = await this.offer('http1', listener, [socket], undefined, peer, turn);
      if (result.outcome === 'failed') {
        releaseReads(socket);
        return 'failed';
      }
      socket.destroy();
      return 'moved';
    } finally {
      turn.done();
    }
  }

  /**
   * Send `sockets` (their reads already held) as the parts of one hand-off, and wait for the answer. The
   * sockets are left as they are: closing this process's copies, or resuming, is the caller's.
   */
  offer(kind: HandoffKind, listener: string, sockets: readonly net.Socket[], tunnel?: TunnelState, peer?: HandoffPeer, turn?: Turn): Promise<HandoffResult> {
    const id = `${process.pid}:${++this.#seq}`;
    return new Promise<HandoffResult>((resolve) => {
      const timer = setTimeout(() => this.settle({ type: 'handoff-result', id, outcome: 'unknown', reason: 'unknown' }), ANSWER_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(id, { kind, resolve, timer });
      const handles = sockets.map((s) => streamHandle(s));
      if (!this.#channel.connected || handles.some((h) => h === null)) {
        this.warn?.({ handoff: id, kind, code: this.#channel.connected ? 'ENOHANDLE' : 'ERR_IPC_CHANNEL_CLOSED' }, 'hand-off: nothing to send (no channel to the master, or a socket without its descriptor); the connection stays here');
        turn?.passed();
        this.settle({ type: 'handoff-result', id, outcome: 'failed', reason: 'ipc' });
        return;
      }
      this.trace?.({ handoff: id, kind }, 'handoff: offered');
      let unwritten = handles.length;
      handles.forEach((handle, part) => {
        const msg: HandoffOffer = { type: 'handoff', id, kind, listener, part, parts: handles.length, ...(part === handles.length - 1 && tunnel ? { tunnel } : {}), ...(part === handles.length - 1 && peer ? { peer } : {}) };
        // An error here means the message was not written: nobody can have the descriptor but us.
        this.#channel.send(msg, handle, (err) => {
          if (--unwritten === 0) turn?.passed();
          if (err) {
            this.warn?.({ handoff: id, kind, part, code: codeOrMessage(err) }, 'hand-off: the descriptor could not be sent to the master; the connection stays here');
            this.settle({ type: 'handoff-result', id, outcome: 'failed', reason: 'ipc' });
          } else this.trace?.({ handoff: id, part }, 'handoff: written');
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
    this.trace?.({ handoff: result.id, outcome: result.outcome, ...(result.outcome === 'taken' ? {} : { reason: result.reason }) }, 'handoff: answered');
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
