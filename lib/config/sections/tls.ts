/** @module A listener's `tls` block: the default certificate and the SNI certificates chosen by server name. */
import { HOST_PATTERN_FORMAT, parseHostPattern } from '../../util/host-pattern.js';
import { readCertificate } from '../certificate.js';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { SniEntry, TlsConfig } from '../types.js';

export function readTls(r: Reader, cur: Cursor): TlsConfig | undefined {
  const f = r.fields(cur, ['cert', 'key', 'sni']);
  if (f === undefined) return undefined;
  const main = readCertificate(r, f);
  const sni = optional(f.get('sni'), (c) => readSni(r, c)) ?? [];
  return main === undefined ? undefined : { ...main, sni };
}

function readSni(r: Reader, cur: Cursor): SniEntry[] {
  const entries: SniEntry[] = [];
  // A name in two entries would make the certificate depend on their order; refuse it instead.
  const seen = new Map<string, string>();
  for (const item of r.list(cur) ?? []) {
    const f = r.fields(item, ['names', 'cert', 'key']);
    if (f === undefined) continue;
    const names: string[] = [];
    for (const nameCur of optional(f.required('names'), (c) => r.list(c, 'name')) ?? []) {
      const name = r.parse(nameCur, HOST_PATTERN_FORMAT, parseHostPattern);
      if (name === undefined) continue;
      const other = seen.get(name);
      if (other !== undefined) r.fail(nameCur.node, nameCur.path, `${name} is already in ${other}`);
      seen.set(name, item.path);
      names.push(name);
    }
    const certificate = readCertificate(r, f);
    if (certificate !== undefined) entries.push({ ...certificate, names });
  }
  return entries;
}
