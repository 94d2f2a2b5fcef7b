// A minimal hand-written WebSocket (RFC 6455) for the drill: server-side echo on an http 'upgrade' event and a
// raw-socket client. Text/binary/ping/pong/close, masking, 7/16/64-bit lengths; no extensions, no fragmentation
// on send (fragments are reassembled on receive).
import crypto from 'node:crypto';
import net from 'node:net';
import { EventEmitter } from 'node:events';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

export const acceptKey = (key) => crypto.createHash('sha1').update(key + GUID).digest('base64');

export function encodeFrame(opcode, payload, masked) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '');
  const len = data.length;
  const extra = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + extra + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (extra === 2) head.writeUInt16BE(len, 2);
  else if (extra === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!masked) return Buffer.concat([head, data]);
  const mask = crypto.randomBytes(4);
  mask.copy(head, 2 + extra);
  const out = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) out[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, out]);
}

/** Incremental frame parser: push(buf) returns complete messages {opcode, payload}; throws on protocol errors. */
export class FrameReader {
  constructor(maxPayload = 16 * 1024 * 1024) {
    this.buf = Buffer.alloc(0);
    this.maxPayload = maxPayload;
    this.fragments = null; // {opcode, parts}
  }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(this.maxPayload)) throw new Error('websocket frame too large');
        len = Number(big);
        off = 10;
      }
      if (len > this.maxPayload) throw new Error('websocket frame too large');
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[maskOff + (i & 3)];
      this.buf = b.subarray(off + len);
      if (opcode >= 8) {
        out.push({ opcode, payload, masked });
      } else if (opcode === OP.cont) {
        if (!this.fragments) throw new Error('unexpected continuation frame');
        this.fragments.parts.push(payload);
        if (fin) {
          out.push({ opcode: this.fragments.opcode, payload: Buffer.concat(this.fragments.parts), masked });
          this.fragments = null;
        }
      } else if (fin) {
        out.push({ opcode, payload, masked });
      } else {
        this.fragments = { opcode, parts: [payload] };
      }
    }
    return out;
  }
}

/** Echo server: attach with `server.on('upgrade', wsEchoUpgrade)`. */
export function wsEchoUpgrade(req, socket, head) {
  const key = req.headers['sec-websocket-key'];
  if (!key || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  socket.setNoDelay(true);
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
  );
  const reader = new FrameReader();
  let closed = false;
  const onData = (chunk) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.opcode === OP.text || f.opcode === OP.binary) socket.write(encodeFrame(f.opcode, f.payload, false));
      else if (f.opcode === OP.ping) socket.write(encodeFrame(OP.pong, f.payload, false));
      else if (f.opcode === OP.close && !closed) {
        closed = true;
        socket.end(encodeFrame(OP.close, f.payload.subarray(0, 2), false));
      }
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  if (head && head.length) onData(head);
}

/**
 * Client. Resolves a WsClient once the 101 with the right Sec-WebSocket-Accept arrived; rejects otherwise.
 * Events: 'message' (text string), 'close' ({byServer, hadError, error}).
 */
export function wsConnect(port, path, { host = '127.0.0.1', timeout = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const socket = net.connect(port, host);
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let done = false;
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(msg));
    };
    const timer = setTimeout(() => fail(`handshake timeout after ${timeout}ms`), timeout);
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('error', (e) => fail(`handshake: ${e.code || e.message}`));
    socket.on('close', () => fail('handshake: connection closed'));
    const onHead = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16384) fail('handshake: response head too large');
        return;
      }
      const head = buf.subarray(0, end).toString('latin1');
      const rest = buf.subarray(end + 4);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
      if (status !== '101') return fail(`handshake: status ${status ?? '?'} (${head.split('\r\n')[0]})`);
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (accept !== acceptKey(key)) return fail('handshake: bad Sec-WebSocket-Accept');
      done = true;
      clearTimeout(timer);
      socket.removeListener('data', onHead);
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      resolve(new WsClient(socket, rest));
    };
    socket.on('data', onHead);
  });
}

export class WsClient extends EventEmitter {
  constructor(socket, rest) {
    super();
    this.socket = socket;
    this.reader = new FrameReader();
    this.open = true;
    this.closing = false; // a close frame was sent
    this.closedByUs = false; // close() was called
    this.error = null;
    socket.on('data', (c) => this._data(c));
    socket.on('error', (e) => {
      this.error = e;
    });
    socket.on('close', (hadError) => {
      const wasOpen = this.open;
      this.open = false;
      this.emit('close', { byServer: !this.closedByUs, hadError, error: this.error, wasOpen });
    });
    if (rest.length) queueMicrotask(() => this._data(rest));
  }
  _data(chunk) {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this.error = e;
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.opcode === OP.text) this.emit('message', f.payload.toString('utf8'));
      else if (f.opcode === OP.binary) this.emit('message', f.payload);
      else if (f.opcode === OP.ping) this.socket.write(encodeFrame(OP.pong, f.payload, true));
      else if (f.opcode === OP.close) {
        if (!this.closing) {
          this.serverClose = true;
          this.closing = true;
          this.socket.write(encodeFrame(OP.close, f.payload.subarray(0, 2), true));
        }
        this.socket.end();
      }
    }
  }
  send(text) {
    if (!this.open || this.closing) return false;
    return this.socket.write(encodeFrame(OP.text, text, true)), true;
  }
  /** Graceful close: send a close frame, wait for the peer's close and the TCP close (bounded). */
  close(ms = 5000) {
    this.closedByUs = true;
    return new Promise((resolve) => {
      if (!this.open) return resolve(true);
      const t = setTimeout(() => {
        this.socket.destroy();
        resolve(false);
      }, ms);
      this.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
      if (!this.closing) {
        this.closing = true;
        const code = Buffer.alloc(2);
        code.writeUInt16BE(1000);
        this.socket.write(encodeFrame(OP.close, code, true));
      }
    });
  }
}
