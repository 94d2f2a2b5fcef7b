/**
 * @module The open WebSocket tunnels of a worker: each one counted from its handshake to its close (least_conn
 * inflight, the tunnels gauge), logged and counted once when it closes; moved to another worker when this one
 * drains with hand-off on (tunnel-move.ts), and adopted when another worker moves one here, which then counts and
 * logs it as its own.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TunnelState } from '../ipc/messages.js';
import type { HandlerContext } from './exchange.js';
import { ms } from './access-log.js';
import type { Target } from './upstream/pools.js';
import type { Turn } from './handoff.js';
import { letGo, pipeOn, plainTcp, quiesce, resume } from './tunnel-move.js';

export interface Tunnel {
  readonly client: Duplex;
  /** Index in config.routes (-1: none here: a moved tunnel whose route this config lacks), and its label. */
  readonly route: number;
  readonly label: string | null;
  readonly hostname: string;
  readonly requestId: string;
  readonly upstreamName: string;
  /** null for a moved tunnel whose target this config lacks: not counted in least_conn. */
  readonly target: Target | null;
  readonly targetAddress: string;
  /** When the handshake arrived, ms since the epoch (it may have arrived at another worker). */
  readonly startedAt: number;
  readonly url: string;
  readonly clientAddress: string;
  /** Written to the client by the workers it went through before this one. */
  readonly bytesBefore: number;
  proxyReq: http.ClientRequest | null;
  upstreamSocket: net.Socket | null;
  connected: boolean;
  /** Something was written to the client (101 or a relayed refusal): no error page any more. */
  responded: boolean;
  upgraded: boolean;
  status: number;
  counted: boolean;
  closed: boolean;
  /** Being offered to another worker; `moved`: it went, its sockets here are only copies being closed. */
  moving: boolean;
  moved: boolean;
}

/** Moves a quiesced tunnel's two sockets (handoff.ts) in its turn: resolves true when it left this process. */
export type TunnelMover = (client: net.Socket, upstream: net.Socket, state: TunnelState, turn: Turn) => Promise<boolean>;

/** What the drain gives `moveAll`: the sender's turns (tunnels before idle HTTP/1) and its mover. */
export interface TunnelMoves {
  readonly move: TunnelMover;
  turn(kind: 'websocket'): Promise<Turn>;
  stayed(): void;
}

/** Socket errors are expected (resets); the tunnel's 'close' does the cleanup. The listener must exist. */
export function ignoreSocketError(): void {}

export class TunnelBook {
  readonly #ctx: HandlerContext;
  readonly #open = new Set<Tunnel>();
  /** Route labels of this config, by index: a moved tunnel finds its route again by label. */
  readonly #labels: readonly string[];

  constructor(ctx: HandlerContext, labels: readonly string[]) {
    this.#ctx = ctx;
    this.#labels = labels;
  }

  get size(): number {
    return this.#open.size;
  }

  /** Close every tunnel now (the drain deadline). */
  closeAll(): void {
    for (const t of this.#open) {
      t.upstreamSocket?.destroy();
      t.proxyReq?.destroy();
      t.client.destroy();
    }
  }

  /** A tunnel whose handshake is under way: open from now on, counted in least_conn. */
  track(tunnel: Tunnel): void {
    if (tunnel.target !== null) tunnel.target.inflight++; // least_conn sees long-lived tunnels too
    else tunnel.counted = false;
    this.#open.add(tunnel);
    tunnel.client.once('close', () => this.#closed(tunnel));
  }

  /** The upstream left: let what it sent reach the client, then close (not for a copy that moved on). */
  upstreamClosed(tunnel: Tunnel): void {
    const c = tunnel.client as Duplex & { destroySoon?: () => void };
    if (c.destroyed || tunnel.moved) return;
    if (typeof c.destroySoon === 'function') c.destroySoon();
    else c.end();
  }

  /**
   * The drain, hand-off on: every tunnel whose two ends are plain TCP is offered to a serving worker; `listener`
   * gives the address key of a client socket's cleartext listener (null: it cannot move).
   */
  moveAll(mover: TunnelMoves, listener: (client: net.Socket) => string | null): void {
    for (const t of this.#open) {
      if (!t.upgraded || t.closed || t.moving || !plainTcp(t.client) || !plainTcp(t.upstreamSocket) || listener(t.client) === null) continue;
      t.moving = true;
      const [client, upstream] = [t.client, t.upstreamSocket];
      // A tunnel is paused only once its turn comes: one round trip, not the whole drain.
      void mover.turn('websocket').then((turn) => this.#move(t, client, upstream, mover, turn).finally(turn.done));
    }
  }

  async #move(t: Tunnel, client: net.Socket, upstream: net.Socket, mover: TunnelMoves, turn: Turn): Promise<void> {
    if (t.closed || !(await quiesce(client, upstream))) {
      t.moving = false;
      if (!t.closed) mover.stayed();
      return;
    }
    const state: TunnelState = {
      client: t.clientAddress, host: t.hostname, path: t.url, requestId: t.requestId, route: t.label, upstream: t.upstreamName,
      target: t.targetAddress, startedAt: t.startedAt, bytes: t.bytesBefore + client.bytesWritten,
    };
    const moved = await mover.move(client, upstream, state, turn);
    t.moving = false;
    if (!moved) {
      resume(client, upstream);
      return;
    }
    // It lives on in another worker, which counts and logs it: here it just leaves.
    t.moved = true;
    this.#open.delete(t);
    if (t.counted) {
      t.counted = false;
      t.target!.inflight--;
    }
    letGo(client, upstream);
  }

  /** A tunnel another worker moved here: piped on, counted, logged at its close like one of ours. */
  adopt(state: TunnelState, client: net.Socket, upstream: net.Socket): void {
    client.on('error', ignoreSocketError);
    upstream.on('error', ignoreSocketError);
    const route = state.route === null ? -1 : this.#labels.indexOf(state.route);
    let target: Target | null = null;
    for (const action of this.#ctx.actions) {
      if (action.upstream?.config.name !== state.upstream) continue;
      target = action.upstream.targets.find((x) => x.address === state.target) ?? null;
      break;
    }
    const tunnel: Tunnel = {
      client, route, label: state.route, hostname: state.host, requestId: state.requestId, upstreamName: state.upstream, target,
      targetAddress: state.target, startedAt: state.startedAt, url: state.path, clientAddress: state.client, bytesBefore: state.bytes,
      proxyReq: null, upstreamSocket: upstream, connected: true, responded: true, upgraded: true, status: 101, counted: true, closed: false, moving: false, moved: false,
    };
    this.track(tunnel);
    upstream.once('close', () => this.upstreamClosed(tunnel));
    pipeOn(client, upstream);
  }

  #closed(tunnel: Tunnel): void {
    if (tunnel.closed || tunnel.moved) return;
    tunnel.closed = true;
    this.#open.delete(tunnel);
    if (tunnel.counted) {
      tunnel.counted = false;
      tunnel.target!.inflight--;
    }
    if (!tunnel.upgraded) tunnel.proxyReq?.destroy();
    tunnel.upstreamSocket?.destroy();
    const status = tunnel.status === 0 ? 499 : tunnel.status;
    this.#ctx.log.countTunnel(tunnel.route, status);
    if (status === 499) this.#ctx.log.abandoned();
    this.#ctx.log.access({
      client: tunnel.clientAddress, method: 'GET', host: tunnel.hostname, path: tunnel.url, status,
      // The socket belongs to this tunnel alone, so its counter is exact (handshake answer included).
      bytes: tunnel.bytesBefore + ((tunnel.client as Partial<net.Socket>).bytesWritten ?? 0),
      duration: ms(tunnel.startedAt, Date.now()), upstream: tunnel.upstreamName, target: tunnel.targetAddress,
      upstream_time: null, request_id: tunnel.requestId, protocol: 'HTTP/1.1',
    });
  }
}
