/** @module loadConfig end to end: defaults, paths, freezing, aliases and an unreadable file. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { autoWorkers } from '../../../lib/config/cpu-quota.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { formatConfigError } from '../../../lib/config/errors.js';
import { loadConfig } from '../../../lib/config/load.js';
import type { Config, ConfigError } from '../../../lib/config/types.js';

/** The compiled test runs from dist/test/unit/config; the fixtures are not compiled, so resolve from the repo root. */
const FIXTURES = path.resolve(fileURLToPath(import.meta.url), '../../../../../test/fixtures/config');

/** `file:line:col: message` relative to `dir`, as `baton -t` prints it when run from there. */
function relativeLines(errors: readonly ConfigError[], dir = FIXTURES): string[] {
  return errors.map((e) => formatConfigError(e).split(`${dir}/`).join(''));
}

function mustLoad(file: string): Config {
  const result = loadConfig(file);
  if (!result.ok) throw new Error(`expected ${file} to load:\n${relativeLines(result.errors).join('\n')}`);
  return result.config;
}

function tempConfig(t: Test, yaml: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'baton-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'baton.yaml');
  writeFileSync(file, yaml);
  return file;
}

t.test('a config with only listeners and routes gets every default', async (t) => {
  const config = mustLoad(path.join(FIXTURES, 'minimal.yaml'));
  t.strictSame(config, {
    file: path.join(FIXTURES, 'minimal.yaml'),
    pidFile: path.join(FIXTURES, 'baton.pid'),
    workers: autoWorkers(),
    shutdownTimeout: 30_000,
    upgradeTimeout: 60_000,
    user: null,
    log: { level: 'info', error: { kind: 'stderr' }, access: { kind: 'stdout' }, queryStrings: true },
    admin: null,
    listeners: [{ address: { key: '127.0.0.1:0', host: '127.0.0.1', port: 0, family: 4 }, h2c: false, tls: null, proxyProtocol: false, mode: null, owner: null }],
    limits: {
      maxHeaderSize: 16 * 1024, maxHeaders: 100, maxBodySize: 100 * 1024 * 1024, headerTimeout: 10_000, bodyTimeout: 60_000,
      keepaliveTimeout: 5_000, keepaliveRequests: 1000, http2MaxConcurrentStreams: 128, underscoresInHeaders: false,
      requestBuffering: true, requestBufferSize: 64 * 1024,
    },
    drain: { handoff: true },
    upstreams: {},
    routes: [{
      host: null, path: '/', upstream: null, return: { status: 204, body: '', headers: {} }, maxBodySize: 100 * 1024 * 1024, rateLimit: null,
      scheme: null, redirect: null, access: null, requestHeaders: null, responseHeaders: null, upstreamHost: { kind: 'preserve' }, stripPrefix: false, addPrefix: '', compress: true,
    }],
    trustedProxies: [],
    compression: null,
  });
});

t.test('drain.handoff reads on and off (and true and false); absent, it is on', async (t) => {
  const base = 'listeners: [{listen: 8080}]\nroutes: [{return: {status: 204}}]\n';
  for (const [text, want] of [['on', true], ['off', false], ['true', true], ['false', false]] as const) {
    t.equal(mustLoad(tempConfig(t, `drain: { handoff: ${text} }\n${base}`)).drain.handoff, want, text);
  }
  t.equal(mustLoad(tempConfig(t, base)).drain.handoff, true, 'default');
  t.equal(mustLoad(tempConfig(t, `drain:\n${base}`)).drain.handoff, true, 'an empty section');
});

t.test('workers: auto is one worker per usable CPU (cgroup quota included), and an explicit count is kept', async (t) => {
  const base = 'listeners: [{listen: 8080}]\nroutes: [{return: {status: 204}}]\n';
  t.equal(mustLoad(tempConfig(t, `workers: auto\n${base}`)).workers, autoWorkers());
  t.equal(mustLoad(tempConfig(t, `workers: 7\n${base}`)).workers, 7);
});

t.test('the loaded config is deeply frozen', async (t) => {
  const config = mustLoad(path.join(FIXTURES, 'full.yaml'));
  t.ok(Object.isFrozen(config));
  t.ok(Object.isFrozen(config.log.error));
  t.ok(Object.isFrozen(config.listeners));
  t.ok(Object.isFrozen(config.listeners[0]!.address));
  t.ok(Object.isFrozen(config.upstreams['app']!.targets[0]));
  t.ok(Object.isFrozen(config.routes[3]!.return!.headers));
  t.throws(() => {
    (config.listeners as ListenerArray).push(config.listeners[0]!);
  });
});
type ListenerArray = Config['listeners'][number][];

t.test('the loaded config survives a JSON round trip unchanged, so it can travel to workers over IPC', async (t) => {
  const config = mustLoad(path.join(FIXTURES, 'full.yaml'));
  t.strictSame(JSON.parse(JSON.stringify(config)), config);
});

t.test('relative paths resolve against the config file directory, not the working directory', async (t) => {
  const relative = path.relative(process.cwd(), path.join(FIXTURES, 'full.yaml'));
  const config = mustLoad(relative);
  t.equal(config.file, path.join(FIXTURES, 'full.yaml'));
  t.equal(config.pidFile, path.join(FIXTURES, 'run/baton.pid'));
  t.strictSame(config.log.error, { kind: 'file', path: path.join(FIXTURES, 'logs/error.log') });
});

t.test('absolute paths are kept as written', async (t) => {
  const file = tempConfig(t, 'pid_file: /run/baton/baton.pid\nlog: {error: /var/log/baton/error.log, access: stderr}\nlisteners: [{listen: 8080}]\nroutes: [{return: {status: 204}}]\n');
  const config = mustLoad(file);
  t.equal(config.pidFile, '/run/baton/baton.pid');
  t.strictSame(config.log, { level: 'info', error: { kind: 'file', path: '/var/log/baton/error.log' }, access: { kind: 'stderr' }, queryStrings: true });
});

t.test('a config file that cannot be read is one error at 1:1 with the OS message', async (t) => {
  const file = path.join(FIXTURES, 'does-not-exist.yaml');
  const result = loadConfig(file);
  t.strictSame(result, {
    ok: false,
    errors: [{ file, line: 1, col: 1, message: `ENOENT: no such file or directory, open '${file}'` }],
  });
});

t.test('an alias reads as the anchored value', async (t) => {
  const file = tempConfig(t, [
    'listeners: [{listen: 8080}]',
    'upstreams:',
    '  a: {targets: &targets [{url: "http://127.0.0.1:9001"}]}',
    '  b: {targets: *targets}',
    'routes: [{upstream: a}, {path: /b, upstream: b}]',
  ].join('\n'));
  const config = mustLoad(file);
  t.strictSame(config.upstreams['b']!.targets, config.upstreams['a']!.targets);
});

t.test('an alias to an anchor that does not exist is one error on the alias', async (t) => {
  const file = tempConfig(t, 'listeners: [{listen: 8080}]\nroutes: [{upstream: *nowhere}]\n');
  const result = loadConfig(file);
  t.strictSame(result.ok ? [] : relativeLines(result.errors, path.dirname(file)), ['baton.yaml:2:21: unknown alias *nowhere']);
});

t.test('an upstream named __proto__ is an ordinary key, not a prototype', async (t) => {
  const file = tempConfig(t, 'listeners: [{listen: 8080}]\nupstreams: {__proto__: {targets: [{url: "http://127.0.0.1:1"}]}}\nroutes: [{upstream: __proto__}]\n');
  const config = mustLoad(file);
  t.ok(Object.hasOwn(config.upstreams, '__proto__'));
  t.equal(Object.getPrototypeOf(config.upstreams), Object.prototype);
});
