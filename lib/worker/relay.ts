/**
 * @module The response relay: the upstream's status, headers, body and trailers written to the client, with
 * backpressure (the upstream is paused while the client's buffer is full) and the client's reading watched for
 * inactivity (`idle_timeout`: the pool's own body timer sleeps while we hold it paused). A failure after the
 * headers cuts the response (HTTP/2: RST_STREAM INTERNAL_ERROR), never a short body that looks complete.
 */
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import { NGHTTP2_INTERNAL_ERROR } from './h2-codes.js';
import { buildResponseHeaders } from './headers.js';
import { BAD_RESPONSE, CLIENT_IDLE, INTERNAL, coded } from './errors.js';
import type { IdleSweeper, IdleWatched } from './idle.js';
import type { Cancellable } from './request-body.js';
import type { RouteAction } from './route-action.js';
import { applyHeaderRules } from './header-rules.js';
import { createEncoder, type Encoder, type EncoderOwner } from './encoder.js';
import type { VariableSource } from '../util/template.js';

/** What the relay reports into and writes to: the request's outcome and its response (an Exchange). */
export interface Relayed extends VariableSource {
  status: number;
  bytes: number;
  /** We cut the response ourselves (failure after headers): not a client abort. */
  cut: boolean;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly ctx: { readonly sweeper: IdleSweeper };
  /** The route's action: its response header rules and compression. */
  readonly action: RouteAction | null;
}

const enum Flow {
  /** No response head written yet. */
  None,
  Flowing,
  /** The client's buffer is full: the upstream waits for 'drain'. */
  Paused,
}

/**
 * The relay's state and behaviour, as the base of the upstream attempt (attempt.ts): one object per proxied
 * request for both phases, each in its own file.
 */
export abstract class ResponseRelay implements IdleWatched, Cancellable, EncoderOwner {
  protected readonly ex: Relayed;
  #flow = Flow.None;
  /** The compressing stream between upstream and client, when this response is compressed. */
  #encoder: Encoder | null = null;
  /** In the idle sweeper's set. */
  #watching = false;
  /** Resumes the paused upstream (the pool's `resume`). */
  #resume: (() => void) | null = null;
  idleSince = 0;
  /** The upstream's `idle_timeout`; 0 = the client may take as long as it likes. */
  readonly idleLimit: number;

  constructor(ex: Relayed, idleLimit: number) {
    this.ex = ex;
    this.idleLimit = idleLimit;
  }

  /** Give up on the upstream (the client stopped reading). */
  abstract cancel(err: Error): void;

  /** Write the response head. `close`: the client's rest of an upload cannot be consumed sensibly any more. */
  protected relayHead(statusCode: number, rawHeaders: readonly (Buffer | string)[], statusText: string, requestId: string, resume: () => void, close: boolean): void {
    this.#resume = resume;
    const res = this.ex.res;
    try {
      const headers = buildResponseHeaders(rawHeaders, requestId);
      const action = this.ex.action;
      if (action !== null) {
        if (action.response !== null) applyHeaderRules(headers, action.response, this.ex);
        if (action.compress !== null) {
          const coding = action.compress.decide(this.ex.req, statusCode, headers);
          if (coding !== null) this.#encoder = createEncoder(coding, res, this, contentLength(rawHeaders));
        }
      }
      if (close) res.shouldKeepAlive = false;
      if (statusText && res.req.httpVersionMajor !== 2) res.writeHead(statusCode, statusText, headers);
      else res.writeHead(statusCode, headers);
    } catch (err) {
      throw coded(BAD_RESPONSE, `cannot relay the upstream response headers: ${(err as Error).message}`);
    }
    this.#flow = Flow.Flowing;
    this.ex.status = statusCode;
  }

  /** One body chunk; false when the upstream must wait for 'drain' (the pool then pauses it). */
  protected relayData(chunk: Buffer, clientGone: boolean): boolean {
    const ex = this.ex;
    const encoder = this.#encoder;
    if (encoder === null) ex.bytes += chunk.length; // else counted as it leaves the encoder
    if (clientGone || this.#flow === Flow.None) return true;
    const res = ex.res as Drained;
    if (encoder === null ? res.write(chunk) : encoder.write(chunk)) return true;
    this.#flow = Flow.Paused;
    // The encoder says when it drained (drained() below); the response's 'drain' otherwise.
    if (encoder === null && res[kRelay] !== this) {
      // Hooked on the first backpressure only: most responses never need it.
      res[kRelay] = this;
      res.on('drain', onResponseDrain);
    }
    if (this.idleLimit > 0 && !this.#watching) {
      this.#watching = true;
      ex.ctx.sweeper.watch(this, Date.now());
    }
    return false;
  }

  protected relayEnd(trailers: readonly (string | Buffer)[] | null): void {
    this.stopWatchingDownload();
    if (this.#flow === Flow.None) return;
    const res = this.ex.res;
    // No closure for the usual uncompressed response: this runs once per request.
    if (this.#encoder !== null) this.#encoder.end(() => endResponse(res, trailers));
    else endResponse(res, trailers);
  }

  /** The response cannot be completed: end the stream (HTTP/2) or the connection (HTTP/1) without its end. */
  cutResponse(): void {
    this.stopWatchingDownload();
    this.#encoder?.destroy();
    const ex = this.ex;
    ex.cut = true;
    // A plain destroy() of an HTTP/2 response resets with NO_ERROR, which clients may take for a normal end.
    const stream = (ex.res as unknown as { stream?: { close(code: number): void } }).stream;
    if (stream) stream.close(NGHTTP2_INTERNAL_ERROR);
    else ex.res.destroy();
  }

  drained(): void {
    if (this.#flow !== Flow.Paused) return;
    this.#flow = Flow.Flowing;
    this.stopWatchingDownload();
    this.#resume?.();
  }

  /** Compressed bytes written (EncoderOwner). */
  wrote(bytes: number): void {
    this.ex.bytes += bytes;
  }

  /** The encoder failed (EncoderOwner): the upstream is given up and the response cut. */
  failed(err: Error): void {
    this.cancel(coded(INTERNAL, `compression failed: ${err.message}`));
    if (!this.ex.cut) this.cutResponse();
  }

  stopWatchingDownload(): void {
    if (this.#watching) {
      this.#watching = false;
      this.ex.ctx.sweeper.unwatch(this);
    }
  }

  onIdle(): void {
    this.#watching = false;
    this.cancel(coded(CLIENT_IDLE, 'client stopped reading the response'));
  }
}

/** The response's end, with the upstream's trailers when it sent any. */
function endResponse(res: ServerResponse, trailers: readonly (string | Buffer)[] | null): void {
  if (trailers !== null && trailers.length > 0) relayTrailers(res, trailers);
  res.end();
}

/** The upstream's Content-Length (sizes the encoder), or -1. */
function contentLength(raw: readonly (Buffer | string)[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 14 && n.toString('latin1').toLowerCase() === 'content-length') {
      const text = raw[i + 1]!.toString('latin1').trim();
      return /^\d{1,15}$/.test(text) ? Number(text) : -1;
    }
  }
  return -1;
}

/** The relay of a response whose 'drain' is hooked: found without a closure per response. */
const kRelay = Symbol('baton.relay');
type Drained = ServerResponse & { [kRelay]?: ResponseRelay };

function onResponseDrain(this: Drained): void {
  this[kRelay]?.drained();
}

/** Names that are never trailers worth relaying (RFC 9110 §6.5.1), and never legal in an HTTP/2 frame. */
const NOT_TRAILERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'host']);

/**
 * Upstream trailers (e.g. checksums, grpc-status) reach HTTP/2 clients as a trailing HEADERS frame, and HTTP/1.1
 * clients when the response is chunked (Node writes them only then). Invalid ones are dropped, not fatal.
 */
function relayTrailers(res: ServerResponse, raw: readonly (string | Buffer)[]): void {
  // Strings from our pools; Buffers from a pool that delivers raw bytes (undici's did).
  const text = (x: string | Buffer) => (typeof x === 'string' ? x : x.toString('latin1'));
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = text(raw[i]!).toLowerCase();
    if (NOT_TRAILERS.has(name) || name.startsWith(':')) continue;
    const value = text(raw[i + 1]!);
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch {
      continue;
    }
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  res.addTrailers(out);
}
