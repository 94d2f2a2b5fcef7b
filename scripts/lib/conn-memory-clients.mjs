// The client process of scripts/conn-memory: opens N idle connections of one kind to 127.0.0.1:PORT (h1: TCP
// only; h2c: the HTTP/2 preface and SETTINGS; tls-h1, tls-h2: a TLS handshake with that ALPN, then the preface
// for h2), 50 at a time, reports 'open' over IPC, and closes them all on any message.
import net from 'node:net';
import tls from 'node:tls';

const [port, kind, count] = process.argv.slice(2);
const N = Number(count);
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00', 'latin1');
const open = () => new Promise((resolve, reject) => {
  const h2 = kind === 'h2c' || kind === 'tls-h2';
  const s = kind.startsWith('tls')
    ? tls.connect({ port: Number(port), host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: [h2 ? 'h2' : 'http/1.1'] }, () => { if (h2) s.write(PREFACE); resolve(s); })
    : net.connect(Number(port), '127.0.0.1', () => { if (h2) s.write(PREFACE); resolve(s); });
  s.once('error', reject);
  s.resume();
});
const sockets = [];
try {
  for (let i = 0; i < N; i += 50) sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, N - i) }, open))));
  process.send('open');
} catch (err) {
  process.send(`error: ${err.message}`);
}
process.on('message', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
