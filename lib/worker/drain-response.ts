/**
 * @module HTTP/1 responses decide keep-alive when their headers are written, not when their request arrived: once
 * the worker drains, every response says `Connection: close` (DESIGN §4), except on a connection waiting for a
 * hand-off, which leaves by moving instead.
 */
import type net from 'node:net';
import http from 'node:http';
import { maxRequestsReached } from '../util/internals.js';

/** Some Drainer of this process is draining (a worker has one Drainer). */
let processDraining = false;
let waitsForHandoff: (socket: net.Socket | null) => boolean = () => false;

/** `waits`: whether a connection waits for a hand-off (its responses then keep it open). */
export function markProcessDraining(waits: (socket: net.Socket | null) => boolean): void {
  processDraining = true;
  waitsForHandoff = waits;
}

export class DrainAwareResponse extends http.ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    // Node marks the last response allowed by maxRequestsPerSocket (keepalive_requests) with Connection: close
    // but leaves the connection open for the client to close; nginx closes it, and so do we.
    if ((processDraining && !waitsForHandoff(this.socket)) || maxRequestsReached(this)) this.shouldKeepAlive = false;
    return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
  }
}
