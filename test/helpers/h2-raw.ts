/**
 * @module A raw HTTP/2 client that writes frames itself: unlike Node's client, it can open a stream after a
 * GOAWAY, as a real client does whose request crossed the GOAWAY on the wire.
 */
import type { Duplex } from 'node:stream';

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;

/** HTTP/2 error codes the tests look for. */
export const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK for GET / over http with :authority as a literal without indexing (static table entries 2, 6, 4, 1). */
export function getHeaders(authority: string): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x86, 0x84, 0x01, authority.length]), Buffer.from(authority)]);
}

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Send the preface and settings; call `onFrame` for every frame received (SETTINGS are acknowledged). */
export function h2raw(socket: Duplex, onFrame: (f: Frame) => void): void {
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  readFrames(socket, onFrame);
}

/** Call `onFrame` for every frame received (SETTINGS are acknowledged), for a client that sends its preface itself. */
export function readFrames(socket: Duplex, onFrame: (f: Frame) => void): void {
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const f = { type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      buf = buf.subarray(9 + len);
      if (f.type === FRAME.SETTINGS && !(f.flags & 1)) socket.write(frame(FRAME.SETTINGS, 1, 0));
      onFrame(f);
    }
  });
}

/** HPACK for GET `path` over http (literal :path, :authority): for paths other than `/`. */
export function requestHeaders(authority: string, path: string): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x86, 0x04, path.length]), Buffer.from(path), Buffer.from([0x01, authority.length]), Buffer.from(authority)]);
}

/** RST_STREAM with `code` (8 = CANCEL, as browsers and rapid-reset attacks send). */
export function rstStream(stream: number, code = 8): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

/** The SETTINGS parameters of a SETTINGS frame, by identifier. */
export function settingsOf(f: Frame): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i + 6 <= f.payload.length; i += 6) m.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
  return m;
}

/** An HPACK integer with an `prefix`-bit prefix, the first byte's other bits set to `flags` (RFC 7541 §5.1). */
function hpackInt(value: number, prefix: number, flags: number): number[] {
  const max = (1 << prefix) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** Any header list, each field a literal without indexing and with a literal name (no Huffman): exact bytes on the wire. */
export function literalHeaders(fields: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    out.push(0x00, ...hpackInt(name.length, 7, 0), ...Buffer.from(name, 'latin1'));
    out.push(...hpackInt(value.length, 7, 0), ...Buffer.from(value, 'latin1'));
  }
  return Buffer.from(out);
}
