/**
 * @module Read a certificate and key pair at load time, so a missing file, a non-PEM file or a key that does
 * not match its certificate is a config error (with a position), not a worker that fails to start.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Cursor, Fields, Reader } from './reader.js';
import type { TlsCertificate } from './types.js';

/** Reads the `cert` and `key` keys of `f`. */
export function readCertificate(r: Reader, f: Fields): TlsCertificate | undefined {
  const certCur = f.required('cert');
  const keyCur = f.required('key');
  const cert = certCur && readPem(r, certCur);
  const key = keyCur && readPem(r, keyCur);
  if (cert === undefined || key === undefined) return undefined;
  try {
    createSecureContext({ cert: cert.text, key: key.text });
  } catch (err) {
    return r.fail(certCur!.node, certCur!.path, `cannot be used with ${keyCur!.path}: ${(err as Error).message}`);
  }
  return { certFile: cert.file, keyFile: key.file, cert: cert.text, key: key.text };
}

function readPem(r: Reader, cur: Cursor): { file: string; text: string } | undefined {
  const file = r.file(cur);
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return r.fail(cur.node, cur.path, (err as Error).message);
  }
  if (!text.includes('-----BEGIN')) return r.fail(cur.node, cur.path, `${file} is not a PEM file (no -----BEGIN line)`);
  return { file, text };
}
