/**
 * @module The version of the code this process was started from, read from package.json once at start:
 * after `npm install -g ./baton-proxy-X.Y.Z.tgz` the file on disk changes, but a running master keeps reporting its own.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function readVersion(): string {
  try {
    return String(JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

export const VERSION: string = readVersion();
