/**
 * @module Parse listen addresses (`127.0.0.1:80`, `[::]:443`, `*:80`, `localhost:80`, `8080`) into an Address
 * with one canonical key, so the same socket is recognised however it was written.
 */
import { isIP } from 'node:net';
import type { Address } from '../config/types.js';
import { expected, parsed, type Parsed } from './parsed.js';

export const ADDRESS_FORMAT = 'an address like 127.0.0.1:80, [::]:443 or 8080';
const BRACKETED = /^\[([^\]]*)\]:([^:]*)$/;
const PLAIN = /^([^:]*):([^:]*)$/;

export function parseAddress(input: string | number): Parsed<Address> {
  const text = String(input);
  if (/^\d+$/.test(text)) return build('0.0.0.0', 4, text, input);
  const m = BRACKETED.exec(text) ?? PLAIN.exec(text);
  if (m === null) {
    if (isIP(text) === 6 || isIP(text.replace(/:\d*$/, '')) === 6) return expected('brackets around an IPv6 address, like [::1]:80', input);
    return expected(ADDRESS_FORMAT, input);
  }
  const [, rawHost, port] = m as unknown as [string, string, string];
  if (text.startsWith('[')) {
    if (isIP(rawHost) !== 6) return expected('an IPv6 address inside brackets', input);
    let host: string;
    try {
      host = new URL(`http://[${rawHost}]`).hostname.slice(1, -1);
    } catch {
      // net.isIP accepts zone ids (fe80::1%eth0) that URL rejects; scoped addresses are not supported.
      return expected('an IPv6 address without a zone id', input);
    }
    return build(host, 6, port, input);
  }
  if (rawHost === '*') return build('0.0.0.0', 4, port, input);
  // Resolved by hand: a DNS lookup at load time would make `-t` slow or wrong, and could change between reloads.
  if (rawHost.toLowerCase() === 'localhost') return build('127.0.0.1', 4, port, input);
  if (isIP(rawHost) !== 4) return expected('a numeric IP address, localhost or *', input);
  return build(rawHost, 4, port, input);
}

function build(host: string, family: 4 | 6, portText: string, input: string | number): Parsed<Address> {
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) return expected('a port 0..65535', input);
  const key = family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  return parsed({ key, host, port, family });
}
