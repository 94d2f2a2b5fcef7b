// The upstream of scripts/attack: one HTTP/1.1 server on 127.0.0.1:PORT that counts the TCP connections and
// requests it gets (the parent asks over IPC: any message is answered with {connections, requests}).
//   /ws       200, to an Upgrade request too (a backend that does not switch protocols)
//   /slow     answered after SLOW_MS (argument 2)
//   /upload   reads the request body, answers its length
//   anything  200 "ok\n"
import http from 'node:http';

const port = Number(process.argv[2]);
const slowMs = Number(process.argv[3] ?? 10_000);
let connections = 0;
let requests = 0;

const server = http.createServer((req, res) => {
  requests++;
  const url = req.url ?? '/';
  if (url.startsWith('/slow')) {
    const timer = setTimeout(() => res.end('slow\n'), slowMs);
    res.on('close', () => clearTimeout(timer));
    req.resume();
    return;
  }
  if (url.startsWith('/upload')) {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(`${n}\n`));
    req.on('error', () => {});
    return;
  }
  req.resume();
  res.end('ok\n');
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.requestTimeout = 0;
server.maxConnections = 100_000;
server.on('connection', (s) => {
  connections++;
  s.on('error', () => {});
});
server.on('clientError', (_err, socket) => socket.destroy());
server.listen(port, '127.0.0.1', 4096, () => process.send?.('ready'));
process.on('message', () => process.send?.({ connections, requests }));
process.on('disconnect', () => process.exit(0));
