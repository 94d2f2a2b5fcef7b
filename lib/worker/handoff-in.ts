/**
 * @module The receiving side of a hand-off: a serving worker takes a connection another worker passed by
 * descriptor. It answers `taken` first and reads only once that answer is written (so that if this process dies
 * before it could read, the master sees it gone without a `taken` and the sender serves the connection again),
 * then serves it as one of its own: an HTTP/1.1 connection on the server of the same listener (the one an h2c port's
 * connections come to first), a WebSocket tunnel through its tunnels. It refuses (the sender keeps the connection) when it
 * drains itself, or has no cleartext listener with that address.
 */
import type net from 'node:net';
import type { HandoffFailure, HandoffOffer, HandoffResult, TunnelState } from '../ipc/messages.js';
import { recorder } from '../metrics/recorder.js';
import { codeOrMessage } from '../util/error-text.js';
import { closeRawHandle, socketOnHandle } from '../util/internals.js';
import { adoptPeer } from './proxy-protocol.js';

/** Parts of a tunnel not all arrived by then (its sender died in between): given up, their copies closed. */
const PARTS_TIMEOUT_MS = 10_000;

export interface ReceiverHost {
  /** The server serving cleartext listener `key` here, or null. */
  server(key: string): net.Server | null;
  draining(): boolean;
  /** Answer the master (written: `cb(null)`). */
  reply(msg: HandoffResult, cb: (err: Error | null) => void): void;
  /** An idle HTTP/1 connection was emitted on `server`. */
  handedIn(socket: net.Socket): void;
  /** Pipe a moved tunnel on; `server` is its listener. */
  adoptTunnel(state: TunnelState, client: net.Socket, upstream: net.Socket, server: net.Server): void;
  /** Debug trace of each step (the error log at level debug), and warnings with an error code. */
  trace?(fields: Record<string, unknown>, msg: string): void;
  warn?(fields: Record<string, unknown>, msg: string): void;
}

interface Parts {
  readonly handles: unknown[];
  readonly timer: NodeJS.Timeout;
}

export class HandoffReceiver {
  readonly #parts = new Map<string, Parts>();

  constructor(private readonly host: ReceiverHost) {}

  /** One part of a hand-off, with its descriptor (a raw handle). */
  take(msg: HandoffOffer, handle: unknown): void {
    if (!handle) {
      this.host.warn?.({ handoff: msg.id, part: msg.part, code: 'ENOHANDLE' }, 'hand-off: a part came without its descriptor; refused');
      // Node delivers a handle message only with its handle; a message without one is refused, never guessed at.
      this.#refuse(msg.id, [], 'ipc');
      return;
    }
    let parts = this.#parts.get(msg.id);
    if (parts === undefined) {
      const timer = setTimeout(() => {
        const p = this.#parts.get(msg.id);
        this.#parts.delete(msg.id);
        for (const h of p?.handles ?? []) closeRawHandle(h);
      }, PARTS_TIMEOUT_MS);
      timer.unref();
      parts = { handles: [], timer };
      this.#parts.set(msg.id, parts);
    }
    parts.handles[msg.part] = handle;
    if (parts.handles.filter(Boolean).length < msg.parts) return;
    this.#parts.delete(msg.id);
    clearTimeout(parts.timer);
    this.host.trace?.({ handoff: msg.id, kind: msg.kind }, 'handoff: received');
    const handles = parts.handles;
    const server = this.host.draining() ? null : this.host.server(msg.listener);
    if (server === null || (msg.kind === 'websocket' && (msg.tunnel === undefined || handles.length !== 2))) {
      this.#refuse(msg.id, handles, 'refused');
      return;
    }
    this.host.reply({ type: 'handoff-result', id: msg.id, outcome: 'taken' }, (err) => {
      if (err) {
        this.host.warn?.({ handoff: msg.id, code: codeOrMessage(err) }, 'hand-off: the answer could not be sent; the connection stays with its sender');
        // The answer did not leave: the master sees this worker gone and the sender keeps the connection.
        for (const h of handles) closeRawHandle(h);
        return;
      }
      this.host.trace?.({ handoff: msg.id }, 'handoff: adopted');
      recorder.handoffReceived(msg.kind);
      if (msg.kind === 'http1') {
        const socket = socketOnHandle(handles[0]);
        // Its PROXY header (if any) was read by the sender: the listener's edge must not wait for another one.
        const p = msg.peer;
        adoptPeer(socket, p === undefined ? null : { address: p.address, port: p.port, family: p.family });
        server.emit('connection', socket);
        this.host.handedIn(socket);
      } else {
        this.host.adoptTunnel(msg.tunnel!, socketOnHandle(handles[1]), socketOnHandle(handles[0]), server);
      }
    });
  }

  #refuse(id: string, handles: readonly unknown[], reason: HandoffFailure): void {
    for (const h of handles) closeRawHandle(h);
    this.host.reply({ type: 'handoff-result', id, outcome: 'failed', reason }, () => {});
  }
}
