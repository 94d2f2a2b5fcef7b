/** @module A route's `redirect`: `{to, status}`, `to` a template with request variables (`https://$host$request_uri`). */
import { optional, type Cursor, type Reader } from '../reader.js';
import type { RedirectAction } from '../types.js';
import { readTemplate } from './header-rules.js';

const STATUSES = [301, 302, 307, 308] as const;

export function readRedirect(r: Reader, cur: Cursor): RedirectAction | undefined {
  const f = r.fields(cur, ['to', 'status']);
  if (f === undefined) return undefined;
  const status = optional(f.get('status'), (c) => readStatus(r, c)) ?? 302;
  const to = optional(f.required('to'), (c) => {
    const text = r.string(c);
    return text === undefined ? undefined : readTemplate(r, c, text, 'location');
  });
  return to === undefined ? undefined : { to, status };
}

function readStatus(r: Reader, cur: Cursor): RedirectAction['status'] | undefined {
  const n = r.integer(cur, 300, 399, 'one of 301, 302, 307, 308');
  if (n === undefined) return undefined;
  return (STATUSES as readonly number[]).includes(n) ? (n as RedirectAction['status']) : r.mismatch(cur, 'one of 301, 302, 307, 308');
}
