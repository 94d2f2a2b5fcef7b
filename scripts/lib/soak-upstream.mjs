// The upstream of scripts/memory-soak: one HTTP/1.1 server on 127.0.0.1:PORT whose paths behave well or badly.
//   /ok?size=N          200 with N bytes
//   /stream             200, 1 MiB in 16 KiB chunks, one every 2 ms (clients abort it mid-way)
//   /upload             reads the request body, answers its length
//   /fail/reset         resets the connection before any response byte
//   /fail/midbody       200 with content-length 65536, sends 8 KiB, then resets
//   /fail/timeout       never answers (the proxy's response_timeout fires)
import http from 'node:http';

const port = Number(process.argv[2]);
const bodies = new Map();
const body = (n) => {
  let b = bodies.get(n);
  if (!b) bodies.set(n, (b = Buffer.alloc(n, 120)));
  return b;
};
const CHUNK = Buffer.alloc(16 * 1024, 121);

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/ok')) {
    const size = Number(/size=(\d+)/.exec(url)?.[1] ?? 100);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    res.end(body(size));
    return;
  }
  if (url.startsWith('/upload')) {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => res.end(String(n)));
    return;
  }
  if (url.startsWith('/stream')) {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 64 * CHUNK.length });
    let sent = 0;
    const timer = setInterval(() => {
      if (res.destroyed || sent === 64) return void clearInterval(timer);
      res.write(CHUNK);
      if (++sent === 64) { clearInterval(timer); res.end(); }
    }, 2);
    res.on('close', () => clearInterval(timer));
    return;
  }
  if (url.startsWith('/fail/reset')) {
    req.socket.resetAndDestroy();
    return;
  }
  if (url.startsWith('/fail/midbody')) {
    req.resume();
    res.writeHead(200, { 'content-length': 65536 });
    res.write(body(8192), () => setTimeout(() => req.socket.resetAndDestroy(), 1));
    return;
  }
  if (url.startsWith('/fail/timeout')) {
    req.resume(); // never answered; the proxy gives up and closes the connection
    return;
  }
  res.statusCode = 404;
  res.end();
});
server.keepAliveTimeout = 30_000;
server.headersTimeout = 31_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`soak upstream on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
