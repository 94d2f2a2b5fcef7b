/**
 * @module A raw HTTP/1.1 keep-alive client for hand-off tests: one TCP connection the test controls byte by byte,
 * responses read one at a time (Content-Length framing), and how the connection ended (closed by the server with a
 * FIN or a reset). Plus what the kernel still holds unread for the server on a connection (/proc/net/tcp), so a
 * test can wait until a worker has read what was sent. Every socket is destroyed at teardown.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Tap } from './daemon.js';

export interface Answer {
  readonly status: number;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export class KeepAlive {
  readonly socket: net.Socket;
  /** The server closed the connection (FIN or RST). */
  closed = false;
  reset = false;
  #buf = '';
  readonly #waiting: Array<{ resolve: (a: Answer) => void; reject: (e: Error) => void }> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf += d.toString('latin1');
      this.#parse();
    });
    socket.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') this.reset = true;
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiting.splice(0)) w.reject(new Error(`connection closed${this.reset ? ' (reset)' : ''} before a response; unparsed: ${JSON.stringify(this.#buf.slice(0, 200))}`));
    });
  }

  /** A connection to `127.0.0.1:port`, or to the unix socket at a path. */
  static open(t: Tap, port: number | string): Promise<KeepAlive> {
    return new Promise((resolve, reject) => {
      const s = typeof port === 'string' ? net.connect(port) : net.connect(port, '127.0.0.1');
      t.teardown(() => s.destroy());
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new KeepAlive(s));
      });
    });
  }

  /** The client's own port: with the server's port it names the connection in /proc/net/tcp. */
  get localPort(): number {
    return this.socket.localPort!;
  }

  send(bytes: string): void {
    this.socket.write(bytes);
  }

  /**
   * The next response on the connection (rejects if the connection closes first). A response that arrived whole
   * before the close is still an answer: a loaded machine may read it and the FIN before the test asks.
   */
  next(): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#waiting.push(waiter);
      this.#parse();
      if (this.closed && this.#waiting.includes(waiter)) {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(new Error(`connection already closed; unparsed: ${JSON.stringify(this.#buf.slice(0, 200))}`));
      }
    });
  }

  /** A GET on this connection, and its response. */
  get(path: string, headers = ''): Promise<Answer> {
    this.send(`GET ${path} HTTP/1.1\r\nHost: test\r\n${headers}\r\n`);
    return this.next();
  }

  #parse(): void {
    while (this.#waiting.length > 0) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [line, ...fields] = this.#buf.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const f of fields) {
        const i = f.indexOf(':');
        headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (this.#buf.length < end + 4 + length) return;
      const body = this.#buf.slice(end + 4, end + 4 + length);
      this.#buf = this.#buf.slice(end + 4 + length);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(line!)?.[1] ?? 0);
      // Interim responses (100 Continue) are not answers.
      if (status >= 100 && status < 200) continue;
      this.#waiting.shift()!.resolve({ status, headers, body });
    }
  }
}

/**
 * Bytes the kernel holds unread on the server's side of the loopback connection between `serverPort` and
 * `clientPort` (IPv4), or null when no such socket is listed.
 */
export function unreadByServer(serverPort: number, clientPort: number): number | null {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    if (f[1]!.endsWith(`:${hex(serverPort)}`) && f[2]!.endsWith(`:${hex(clientPort)}`)) return parseInt(f[4]!.split(':')[1]!, 16);
  }
  return null;
}
