/** @module A test CA and certificates made with openssl for one run only: nothing secret is committed. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Keys on the P-256 curve: openssl makes one in milliseconds, an RSA 2048 key takes it 0.1 to 0.5 s (a prime search),
 * and a file makes up to seven sets, blocking its test process meanwhile. Every TLS peer the tests use (Node, curl,
 * HAProxy, grpc-js, undici) takes ECDSA certificates; baton's cipher list has the ECDHE-ECDSA suites.
 */
export const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

/**
 * In `dir`: ca.crt, site.crt/site.key (site.test, *.site.test), api.crt/api.key (api.example.test, *.api…), and
 * client.crt/client.key (CN baton-client, for client authentication: mTLS). A new CA each call.
 */
export function makeCerts(dir: string): { ca: string } {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', ...KEY_ARGS, '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=baton test CA');
  for (const [name, cn] of [['site', 'site.test'], ['api', 'api.example.test']] as const) {
    run('req', ...KEY_ARGS, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=DNS:${cn},DNS:*.${cn}\n`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  run('req', ...KEY_ARGS, '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=baton-client');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  run('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2', '-extfile', 'client.ext');
  return { ca: path.join(dir, 'ca.crt') };
}
