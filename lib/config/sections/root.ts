/** @module The top level of the config file: process settings, then each section, then checks across sections. */
import path from 'node:path';
import { isMap, isScalar } from 'yaml';
import { DURATION_FORMAT, parseDuration } from '../../util/duration.js';
import { autoWorkers } from '../cpu-quota.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { AdminConfig, Config } from '../types.js';
import { claimAddress, readListeners, type Owners } from './listeners.js';
import { readLimits } from './limits.js';
import { readLog } from './log.js';
import { readRoutes } from './routes.js';
import { readUpstreams } from './upstreams.js';
import { readTrustedProxies } from './cidrs.js';
import { readCompression } from './compression.js';

const KEYS = ['pid_file', 'workers', 'shutdown_timeout', 'upgrade_timeout', 'user', 'log', 'admin', 'listeners', 'limits', 'upstreams', 'routes', 'trusted_proxies', 'compression'];

/** Returns undefined only when the document is not a map at all; otherwise check `r.errors`. */
export function readConfig(r: Reader): Config | undefined {
  const root = r.root();
  if (root === undefined) return undefined;
  if (!isMap(root.node)) return r.mismatch(root, 'a map of settings at the top level');
  const f = r.fields(root, KEYS);
  if (f === undefined) return undefined;

  const duration = (c: Cursor) => r.parse(c, DURATION_FORMAT, parseDuration);
  const listenersCur = f.required('listeners');
  const routesCur = f.required('routes');
  const { listeners, owners } = listenersCur === undefined ? { listeners: [], owners: new Map() as Owners } : readListeners(r, listenersCur);
  const limits = readLimits(r, f.get('limits'));
  const { upstreams, names } = readUpstreams(r, f.get('upstreams'));

  return {
    file: r.source.file,
    pidFile: optional(f.get('pid_file'), (c) => r.file(c)) ?? path.resolve(r.source.dir, 'baton.pid'),
    workers: readWorkers(r, f.get('workers')) ?? 1,
    shutdownTimeout: optional(f.get('shutdown_timeout'), duration) ?? 30_000,
    upgradeTimeout: optional(f.get('upgrade_timeout'), duration) ?? 60_000,
    user: optional(f.get('user'), (c) => r.string(c)) ?? null,
    log: readLog(r, f.get('log')),
    admin: optional(f.get('admin'), (c) => readAdmin(r, c, owners)) ?? null,
    listeners,
    limits,
    upstreams,
    routes: routesCur === undefined ? [] : readRoutes(r, routesCur, names, limits.maxBodySize),
    trustedProxies: readTrustedProxies(r, f.get('trusted_proxies')),
    compression: readCompression(r, f.get('compression')),
  };
}

function readWorkers(r: Reader, cur: Cursor | undefined): number | undefined {
  if (cur === undefined || (isScalar(cur.node) && cur.node.value === 'auto')) return autoWorkers();
  return r.integer(cur, 1, Number.MAX_SAFE_INTEGER, 'an integer >= 1 or "auto"');
}

/** `owners` holds the listeners' addresses: the admin server cannot share a listener's socket. */
function readAdmin(r: Reader, cur: Cursor, owners: Owners): AdminConfig | undefined {
  const listen = optional(r.fields(cur, ['listen'])?.required('listen'), (c) => claimAddress(r, c, owners, 'admin'));
  return listen === undefined ? undefined : { listen };
}
