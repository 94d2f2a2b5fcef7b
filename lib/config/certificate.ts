/** @module Read a TLS certificate and key at load time, so a missing, non-PEM or mismatched file is a config error. */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { optional, type Cursor, type Fields, type Reader } from './reader.js';
import type { TlsCertificate } from './types.js';

/** Reads the `cert` and `key` keys of `f`. */
export function readCertificate(r: Reader, f: Fields): TlsCertificate | undefined {
  const cert = optional(f.required('cert'), (c) => readPem(r, c));
  const key = optional(f.required('key'), (c) => readPem(r, c));
  if (cert === undefined || key === undefined) return undefined;
  try {
    createSecureContext({ cert: cert.text, key: key.text });
  } catch (err) {
    return r.fail(cert.cur.node, cert.cur.path, `cannot be used with ${key.cur.path}: ${(err as Error).message}`);
  }
  return { certFile: cert.file, keyFile: key.file, cert: cert.text, key: key.text };
}

export interface Pem {
  readonly cur: Cursor;
  readonly file: string;
  readonly text: string;
}

export function readPem(r: Reader, cur: Cursor): Pem | undefined {
  const file = r.file(cur);
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return r.fail(cur.node, cur.path, (err as Error).message);
  }
  if (!text.includes('-----BEGIN')) return r.fail(cur.node, cur.path, `${file} is not a PEM file (no -----BEGIN line)`);
  return { cur, file, text };
}
