// Upstream for scripts/upgrade-drill, on 127.0.0.1:PORT:
//   GET  /        200 "ok\n" at once
//   GET  /slow    200 after 2 s, body = slowBody() (16 KiB, deterministic, checked by the client)
//   POST /upload  reads the whole body, answers its byte count ("262144\n")
//   GET  /ws      WebSocket echo (hand-written, see websocket.mjs)
//
//   node scripts/lib/drill-upstream.mjs PORT [SLOW_MS]
import http from 'node:http';
import { wsEchoUpgrade } from './websocket.mjs';

export const SLOW_BODY_BYTES = 16 * 1024;
export function slowBody() {
  const unit = 'baton-drill-slow-body-0123456789abcdefghijklmnopqrstuvwxyz\n'; // 60 bytes
  return Buffer.from(unit.repeat(Math.ceil(SLOW_BODY_BYTES / unit.length)).slice(0, SLOW_BODY_BYTES));
}

function main() {
  const port = Number(process.argv[2]);
  const slowMs = Number(process.argv[3] ?? 2000);
  const body = slowBody();
  const ok = Buffer.from('ok\n');
  const server = http.createServer((req, res) => {
    const url = req.url.split('?')[0];
    if (req.method === 'POST' && url === '/upload') {
      let n = 0;
      req.on('data', (c) => (n += c.length));
      req.on('end', () => {
        const b = `${n}\n`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': b.length });
        res.end(b);
      });
      req.on('error', () => {});
      return;
    }
    if (url === '/slow') {
      const t = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
        res.end(body);
      }, slowMs);
      res.on('close', () => clearTimeout(t));
      req.resume();
      return;
    }
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': ok.length });
    res.end(ok);
  });
  server.on('upgrade', (req, socket, head) => {
    if (req.url.split('?')[0] !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wsEchoUpgrade(req, socket, head);
  });
  server.keepAliveTimeout = 65_000; // above every proxy's upstream keepalive_timeout
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  server.on('clientError', (err, socket) => socket.destroy());
  server.listen(port, '127.0.0.1', () => process.stderr.write(`drill-upstream listening on 127.0.0.1:${port}\n`));
  const stop = () => {
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
