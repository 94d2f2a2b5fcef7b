/**
 * @module The master's part in a hand-off (DESIGN §4): it never reads a connection, it relays descriptors. An offer
 * from a draining worker, or from the other master of an upgrade, goes to a ready worker of an active generation
 * that serves that cleartext listener, else to the other master (never back where it came from); the receiver's
 * answer goes back the same way. This master closes its copy of a descriptor as soon as it has passed it on: the
 * sender keeps its own until the answer, so a relay that fails anywhere costs the connection nothing. A worker
 * whose channel closes before it answered never read the connection (receivers answer before they read): the
 * sender is told `failed` and serves it again. Another master that leaves unanswered may have passed it on: `unknown`.
 */
import type { Config } from '../config/types.js';
import type { HandoffFailure, HandoffMessage, HandoffOffer, HandoffResult } from '../ipc/messages.js';
import { codeOrMessage } from '../util/error-text.js';
import { closeRawHandle } from '../util/internals.js';
import type { MasterState } from './state.js';
import type { WorkerHandle } from './worker-handle.js';

/** A process hand-off messages go to and come from: a worker, or the other master of an upgrade. */
export interface HandoffEndpoint {
  readonly name: string;
  /** Another master: its channel closing does not prove that nobody read the connection. */
  readonly master: boolean;
  /** `cb(err)`: the message was not written. */
  send(msg: HandoffMessage, handle: unknown, cb: (err: Error | null) => void): void;
}

/** One hand-off in progress through this master. */
interface Route {
  readonly from: HandoffEndpoint;
  readonly to: HandoffEndpoint | null;
  readonly parts: number;
  received: number;
  /** The sender has its answer (relayed, or ours). */
  answered: boolean;
}

/** A generation that may receive: its config and its workers (null: a slot waiting for its replacement). */
export interface Candidate {
  readonly id: number;
  readonly config: Config;
  readonly workers: readonly (WorkerHandle | null)[];
}

/** The active generations of `state`, newest first, with their workers. */
export function candidatesOf(state: MasterState, byId: ReadonlyMap<number, { readonly slots: readonly (WorkerHandle | null)[] }>): Candidate[] {
  const out: Candidate[] = [];
  for (let i = state.generations.length - 1; i >= 0; i--) {
    const g = state.generations[i]!;
    const gen = byId.get(g.id);
    if (g.status === 'active' && gen !== undefined) out.push({ id: g.id, config: g.config, workers: gen.slots });
  }
  return out;
}

const noop = (): void => {};

/**
 * The ready workers of the first candidate (newest active generation first) that serves `key` without TLS, minus
 * `exclude`: a cleartext connection can only be served again on the same address, as cleartext.
 */
export function receiversFor(candidates: readonly Candidate[], key: string, exclude: WorkerHandle | null): WorkerHandle[] {
  for (const c of candidates) {
    const listener = c.config.listeners.find((l) => l.address.key === key);
    if (listener === undefined || listener.tls !== null) continue;
    const ready = c.workers.filter((w): w is WorkerHandle => w !== null && w !== exclude && w.state === 'ready');
    if (ready.length > 0) return ready;
  }
  return [];
}

export class HandoffRelay {
  readonly #routes = new Map<string, Route>();
  readonly #workers = new WeakMap<WorkerHandle, HandoffEndpoint>();
  readonly #byEndpoint = new WeakMap<HandoffEndpoint, WorkerHandle>();
  /** Descriptors given to each endpoint and not yet written to it (Node sends one at a time, each acknowledged). */
  readonly #queued = new Map<HandoffEndpoint, number>();
  #turn = 0;

  /**
   * `candidates`: the active generations, newest first. `peer`: the other master of an upgrade when it may take
   * connections, else null.
   */
  constructor(private readonly where: {
    candidates(): readonly Candidate[];
    peer(): HandoffEndpoint | null;
    /** Debug trace of each relayed step, and warnings (a descriptor that could not be passed on, with its code). */
    log?(): { debug(fields: object, msg: string): void; warn(fields: object, msg: string): void };
  }) {}

  /** The endpoint of a worker (one per worker); its channel closing ends the hand-offs waiting for it. */
  worker(w: WorkerHandle): HandoffEndpoint {
    let ep = this.#workers.get(w);
    if (ep === undefined) {
      const endpoint: HandoffEndpoint = { name: `worker ${w.pid}`, master: false, send: (msg, handle, cb) => w.sendHandoff(msg, handle, cb) };
      ep = endpoint;
      this.#workers.set(w, ep);
      this.#byEndpoint.set(ep, w);
      w.child?.once('disconnect', () => this.gone(endpoint));
    }
    return ep;
  }

  /**
   * Whether a worker draining in generation `except` may offer its connections: another active generation has a
   * ready worker, or the other master takes them (the drain message says so, sparing offers bound to fail).
   */
  canReceive(except: number): boolean {
    const others = this.where.candidates().some((c) => c.id !== except && c.workers.some((w) => w !== null && w.state === 'ready'));
    return others || this.where.peer() !== null;
  }

  /** A message from `from`: an offer part with its descriptor, or a receiver's answer. */
  receive(from: HandoffEndpoint, msg: HandoffMessage, handle: unknown): void {
    if (msg.type === 'handoff') this.#offer(from, msg, handle);
    else this.#answer(from, msg);
  }

  /**
   * Where an offer goes: the ready worker of the newest active generation serving the listener with the fewest
   * descriptors waiting to reach it (a worker busy serving acknowledges slowly; in turn among equals), else the peer.
   */
  #pick(key: string, from: HandoffEndpoint): HandoffEndpoint | null {
    const ready = receiversFor(this.where.candidates(), key, this.#byEndpoint.get(from) ?? null);
    if (ready.length > 0) {
      const start = this.#turn++;
      let best: HandoffEndpoint | null = null;
      for (let i = 0; i < ready.length; i++) {
        const ep = this.worker(ready[(start + i) % ready.length]!);
        if (best === null || (this.#queued.get(ep) ?? 0) < (this.#queued.get(best) ?? 0)) best = ep;
      }
      return best;
    }
    // An offer from the other master stays here: the two never pass one back and forth.
    return from.master ? null : this.where.peer();
  }

  #offer(from: HandoffEndpoint, msg: HandoffOffer, handle: unknown): void {
    let route = this.#routes.get(msg.id);
    if (route === undefined) {
      route = { from, to: this.#pick(msg.listener, from), parts: msg.parts, received: 0, answered: false };
      this.#routes.set(msg.id, route);
      if (route.to === null) this.#fail(msg.id, route, 'no_receiver');
    }
    route.received++;
    const r = route;
    if (r.to === null || r.answered || !handle) {
      closeRawHandle(handle);
      if (!handle) {
        this.where.log?.().warn({ handoff: msg.id, part: msg.part, from: from.name, code: 'ENOHANDLE' }, 'hand-off: an offer came without its descriptor');
        this.#fail(msg.id, r, 'ipc');
      }
      this.#forget(msg.id, r);
      return;
    }
    const to = r.to;
    const queued = (this.#queued.get(to) ?? 0) + 1;
    this.#queued.set(to, queued);
    this.where.log?.().debug({ handoff: msg.id, part: msg.part, from: from.name, to: to.name, queued }, 'handoff: relaying');
    to.send(msg, handle, (err) => {
      const left = (this.#queued.get(to) ?? 1) - 1;
      if (left > 0) this.#queued.set(to, left);
      else this.#queued.delete(to);
      // Passed on or not, this copy is not needed: the sender still holds its own.
      closeRawHandle(handle);
      if (err) {
        this.where.log?.().warn({ handoff: msg.id, part: msg.part, to: to.name, code: codeOrMessage(err) }, 'hand-off: a descriptor could not be passed on; the connection stays with its sender');
        this.#fail(msg.id, r, 'ipc');
      } else this.where.log?.().debug({ handoff: msg.id, part: msg.part, to: to.name }, 'handoff: relayed');
    });
  }

  #answer(from: HandoffEndpoint, msg: HandoffResult): void {
    const route = this.#routes.get(msg.id);
    if (route === undefined || route.to !== from || route.answered) return;
    route.answered = true;
    this.where.log?.().debug({ handoff: msg.id, outcome: msg.outcome, from: from.name }, 'handoff: answer relayed');
    route.from.send(msg, undefined, noop);
    this.#forget(msg.id, route);
  }

  #fail(id: string, route: Route, reason: HandoffFailure): void {
    if (route.answered) return;
    route.answered = true;
    const outcome = reason === 'unknown' ? 'unknown' : 'failed';
    route.from.send({ type: 'handoff-result', id, outcome, reason }, undefined, noop);
    this.#forget(id, route);
  }

  /** A route is kept until its sender has its answer and every part has come through (later parts are closed). */
  #forget(id: string, route: Route): void {
    if (route.answered && route.received >= route.parts) this.#routes.delete(id);
  }

  /** `endpoint`'s channel closed: what waited for its answer gets one; what it was sending is dropped. */
  gone(endpoint: HandoffEndpoint): void {
    this.#queued.delete(endpoint);
    for (const [id, route] of this.#routes) {
      if (route.from === endpoint) this.#routes.delete(id);
      else if (route.to === endpoint && !route.answered) this.#fail(id, route, endpoint.master ? 'unknown' : 'receiver_gone');
    }
  }

  /** Hand-offs waiting for an answer (for tests and /status). */
  get pending(): number {
    return this.#routes.size;
  }
}
