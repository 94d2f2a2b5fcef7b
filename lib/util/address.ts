/** @module Parse listen addresses (`127.0.0.1:80`, `[::]:443`, `*:80`, `localhost:80`, `8080`) into an Address with one canonical key. */
import { isIP } from 'node:net';
import type { Address } from '../config/types.js';
import { expected, parsed, type Parsed } from './parsed.js';

export const ADDRESS_FORMAT = 'an address like 127.0.0.1:80, [::]:443 or 8080';
const BRACKETED = /^\[([^\]]*)\]:([^:]*)$/;
const PLAIN = /^([^:]*):([^:]*)$/;

export function parseAddress(input: string | number): Parsed<Address> {
  const text = String(input);
  if (/^\d+$/.test(text)) return build('0.0.0.0', 4, text, input);
  const bracketed = BRACKETED.exec(text);
  if (bracketed !== null) return parseIPv6(bracketed[1]!, bracketed[2]!, input);
  const plain = PLAIN.exec(text);
  if (plain === null) {
    const ipv6 = isIP(text) === 6 || isIP(text.replace(/:\d*$/, '')) === 6;
    return expected(ipv6 ? 'brackets around an IPv6 address, like [::1]:80' : ADDRESS_FORMAT, input);
  }
  const [, host, port] = plain as unknown as [string, string, string];
  if (host === '*') return build('0.0.0.0', 4, port, input);
  // Resolved by hand: a DNS lookup at load time would make `-t` slow or wrong, and could change between reloads.
  if (host.toLowerCase() === 'localhost') return build('127.0.0.1', 4, port, input);
  if (isIP(host) !== 4) return expected('a numeric IP address, localhost or *', input);
  return build(host, 4, port, input);
}

function parseIPv6(host: string, port: string, input: string | number): Parsed<Address> {
  if (isIP(host) !== 6) return expected('an IPv6 address inside brackets', input);
  let canonical: string;
  try {
    // URL compresses and lower-cases (`[0:0::1]` → `[::1]`), so one socket has one key however it is written.
    canonical = new URL(`http://[${host}]`).hostname.slice(1, -1);
  } catch {
    // net.isIP accepts zone ids (fe80::1%eth0) that URL rejects; scoped addresses are not supported.
    return expected('an IPv6 address without a zone id', input);
  }
  return build(canonical, 6, port, input);
}

function build(host: string, family: 4 | 6, portText: string, input: string | number): Parsed<Address> {
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) return expected('a port 0..65535', input);
  const key = family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  return parsed({ key, host, port, family });
}
