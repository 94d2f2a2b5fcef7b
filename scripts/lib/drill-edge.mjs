// scripts/upgrade-drill --edge: baton behind a load balancer. baton gets a unix listener and a TCP listener, both
// with proxy_protocol: true, and a rate_limit on the drilled route (far above what the clients send); HAProxy (TCP
// mode) sends PROXY v2 to the unix socket and PROXY v1 to the TCP listener, and wrk drives load through it across
// every upgrade and reload. HAProxy itself never restarts: its connections land on baton's inherited sockets.
import fs from 'node:fs';
import path from 'node:path';
import { HOST, spawnTracked, waitFor, httpGet } from './common.mjs';

export const EDGE_SOCKET = 'edge.sock';

/** Listener lines for baton's config (YAML list items). */
export function edgeListeners(ppPort) {
  return `  - listen: unix:${EDGE_SOCKET}
    proxy_protocol: true
  - listen: ${HOST}:${ppPort}
    proxy_protocol: true`;
}

/**
 * The drilled route's rules in an edge run: a rate limit the drill's clients stay under (one bucket: every client
 * is 127.0.0.1), and header rules both ways.
 */
export const EDGE_RATE_LIMIT = `    rate_limit: { rate: 200000/s, burst: 200000 }
    request_headers: { set: { x-drill-client: "$client_ip" }, remove: [x-drill-remove] }
    response_headers: { add: { x-drill-request: "$request_id" } }
`;

/** Top-level keys of an edge run: responses compressed for the clients that ask (the HAProxy keep-alive lane). */
export const EDGE_TOP = 'compression: { algorithms: [gzip], min_size: 1 }\n';

/** Start HAProxy: `v2Port` → unix socket (send-proxy-v2, TLVs), `v1Port` → `ppPort` (send-proxy). */
export async function startHaproxy(dir, { v2Port, v1Port, ppPort }) {
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, [
    'global', '  log stderr format raw local0 err', '  maxconn 4000',
    'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 120s', '  timeout server 120s',
    'frontend unix_v2', `  bind ${HOST}:${v2Port}`, '  unique-id-format %{+X}o\\ %ci:%cp_%Ts_%rt', '  default_backend unix_v2',
    'backend unix_v2', `  server baton ${path.join(dir, EDGE_SOCKET)} send-proxy-v2 proxy-v2-options crc32c,unique-id`,
    'frontend tcp_v1', `  bind ${HOST}:${v1Port}`, '  default_backend tcp_v1',
    'backend tcp_v1', `  server baton ${HOST}:${ppPort} send-proxy`,
    '',
  ].join('\n'));
  spawnTracked('haproxy', ['-db', '-f', cfg], { cwd: dir, stdout: path.join(dir, 'haproxy.out'), stderr: path.join(dir, 'haproxy.out') });
  const ok = await waitFor(async () => (await httpGet(v2Port, '/', { timeout: 1000 }))?.status === 200 && (await httpGet(v1Port, '/', { timeout: 1000 }))?.status === 200, 15_000, 200);
  return ok;
}
