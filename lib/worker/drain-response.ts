/**
 * @module HTTP/1 responses decide keep-alive when their headers are written, not when their request arrived: once
 * the worker drains, every response says `Connection: close` (DESIGN §4).
 */
import http from 'node:http';
import { maxRequestsReached } from '../util/internals.js';

/** Some Drainer of this process is draining (a worker has one Drainer). */
let processDraining = false;

export function markProcessDraining(): void {
  processDraining = true;
}

export class DrainAwareResponse extends http.ServerResponse {
  override writeHead(statusCode: number, ...rest: unknown[]): this {
    // Node marks the last response allowed by maxRequestsPerSocket (keepalive_requests) with Connection: close
    // but leaves the connection open for the client to close; nginx closes it, and so do we.
    if (processDraining || maxRequestsReached(this)) this.shouldKeepAlive = false;
    return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
  }
}
