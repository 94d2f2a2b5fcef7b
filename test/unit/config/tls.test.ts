/** @module TLS certificates are read and checked at load time; certificates are generated here, never committed. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { formatConfigError } from '../../../lib/config/errors.js';
import { loadConfig } from '../../../lib/config/load.js';
import type { LoadResult } from '../../../lib/config/types.js';

const dir = mkdtempSync(path.join(tmpdir(), 'baton-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'certs'));

/** A throwaway self-signed EC certificate (fast to generate) and its key, under certs/. */
function selfSigned(name: string): void {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-keyout', path.join(dir, 'certs', `${name}.key`), '-out', path.join(dir, 'certs', `${name}.crt`),
  ], { stdio: 'ignore' });
}
selfSigned('site');
selfSigned('api');
writeFileSync(path.join(dir, 'certs', 'notes.txt'), 'not a certificate\n');

/** Loads a config whose only listener has the given `tls:` body (lines indented by six spaces), from line 4. */
function load(tls: string): LoadResult {
  const file = path.join(dir, 'baton.yaml');
  writeFileSync(file, `listeners:\n  - listen: 127.0.0.1:0\n    tls:\n${tls}routes:\n  - return: { status: 204 }\n`);
  return loadConfig(file);
}

/** Errors as `baton -t` prints them from the temp dir: paths relative to it. */
function errors(result: LoadResult): string[] {
  return result.ok ? [] : result.errors.map((e) => formatConfigError(e).split(`${dir}/`).join(''));
}

t.test('a tls listener carries the PEM text and absolute paths of its certificate and key', async (t) => {
  const result = load('      cert: certs/site.crt\n      key: certs/site.key\n');
  t.strictSame(errors(result), []);
  if (!result.ok) return;
  const tls = result.config.listeners[0]!.tls!;
  t.equal(tls.certFile, path.join(dir, 'certs/site.crt'));
  t.equal(tls.keyFile, path.join(dir, 'certs/site.key'));
  t.equal(tls.cert, readFileSync(path.join(dir, 'certs/site.crt'), 'utf8'));
  t.equal(tls.key, readFileSync(path.join(dir, 'certs/site.key'), 'utf8'));
  t.strictSame(tls.sni, []);
});

t.test('sni entries keep their own certificate and lower-cased names', async (t) => {
  const result = load([
    '      cert: certs/site.crt',
    '      key: certs/site.key',
    '      sni:',
    '        - names: [API.Example.com, "*.api.example.com"]',
    '          cert: certs/api.crt',
    '          key: certs/api.key',
    '',
  ].join('\n'));
  t.strictSame(errors(result), []);
  if (!result.ok) return;
  const [entry] = result.config.listeners[0]!.tls!.sni;
  t.strictSame(entry!.names, ['api.example.com', '*.api.example.com']);
  t.equal(entry!.certFile, path.join(dir, 'certs/api.crt'));
  t.equal(entry!.cert, readFileSync(path.join(dir, 'certs/api.crt'), 'utf8'));
});

t.test('a key that does not belong to the certificate is an error on the cert value', async (t) => {
  const result = load('      cert: certs/site.crt\n      key: certs/api.key\n');
  const [line, ...rest] = errors(result);
  t.match(line, /^baton\.yaml:4:13: listeners\[0\]\.tls\.cert: cannot be used with listeners\[0\]\.tls\.key: .*key values mismatch/);
  t.strictSame(rest, []);
});

t.test('a certificate or key file that is not PEM is an error on its value', async (t) => {
  const result = load('      cert: certs/notes.txt\n      key: certs/notes.txt\n');
  t.strictSame(errors(result), [
    'baton.yaml:4:13: listeners[0].tls.cert: certs/notes.txt is not a PEM file (no -----BEGIN line)',
    'baton.yaml:5:12: listeners[0].tls.key: certs/notes.txt is not a PEM file (no -----BEGIN line)',
  ]);
});

t.test('a missing certificate file is an error on its value with the OS message', async (t) => {
  const result = load('      cert: certs/gone.crt\n      key: certs/site.key\n');
  t.strictSame(errors(result), [
    "baton.yaml:4:13: listeners[0].tls.cert: ENOENT: no such file or directory, open 'certs/gone.crt'",
  ]);
});

t.test('the same sni name in two entries is an error on the second', async (t) => {
  const result = load([
    '      cert: certs/site.crt',
    '      key: certs/site.key',
    '      sni:',
    '        - { names: [api.example.com], cert: certs/api.crt, key: certs/api.key }',
    '        - { names: [www.example.com, API.example.com], cert: certs/site.crt, key: certs/site.key }',
    '',
  ].join('\n'));
  t.strictSame(errors(result), [
    'baton.yaml:8:38: listeners[0].tls.sni[1].names[1]: api.example.com is already in listeners[0].tls.sni[0]',
  ]);
});

t.test('an sni entry needs at least one valid name', async (t) => {
  const result = load([
    '      cert: certs/site.crt',
    '      key: certs/site.key',
    '      sni:',
    '        - { names: [], cert: certs/api.crt, key: certs/api.key }',
    '        - { names: ["api.example.com:443"], cert: certs/api.crt, key: certs/api.key }',
    '',
  ].join('\n'));
  t.strictSame(errors(result), [
    'baton.yaml:7:20: listeners[0].tls.sni[0].names: expected at least one name',
    'baton.yaml:8:21: listeners[0].tls.sni[1].names[0]: expected a host name without a port, got "api.example.com:443"',
  ]);
});
