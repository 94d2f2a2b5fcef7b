/**
 * @module Parse listen addresses (`127.0.0.1:80`, `[::]:443`, `*:80`, `localhost:80`, `8080`,
 * `unix:/run/baton/http.sock`) into an Address with one canonical key.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import type { Address } from '../config/types.js';
import { expected, parsed, type Parsed } from './parsed.js';

export const ADDRESS_FORMAT = 'an address like 127.0.0.1:80, [::]:443, 8080 or unix:/run/baton/http.sock';
const BRACKETED = /^\[([^\]]*)\]:([^:]*)$/;
const PLAIN = /^([^:]*):([^:]*)$/;
const UNIX = 'unix:';
/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_UNIX_PATH = 107;

/** `dir`: what a relative unix socket path resolves against (the config file's directory). */
export function parseAddress(input: string | number, dir = process.cwd()): Parsed<Address> {
  const text = String(input);
  if (text.startsWith(UNIX)) return parseUnix(text.slice(UNIX.length), dir, input);
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

/** A unix socket path: the key is `unix:` and the absolute path; the path itself is the host, the port -1. */
function parseUnix(file: string, dir: string, input: string | number): Parsed<Address> {
  // '@name' is Linux's abstract namespace: no file, no mode, no owner; not supported.
  if (file === '' || file.startsWith('@') || file.endsWith('/') || file.includes('\0')) return expected('a socket file path after unix:', input);
  const absolute = path.resolve(dir, file);
  if (Buffer.byteLength(absolute) > MAX_UNIX_PATH) return expected(`a socket path of at most ${MAX_UNIX_PATH} bytes (the kernel's limit)`, input);
  return parsed({ key: UNIX + absolute, host: absolute, port: -1, family: 'unix' });
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
