/**
 * @module An upstream's policies: `hash_key` (what `balance: hash` hashes), `queue` (the waiting room behind
 * `max_connections`) and `retry` (which failures are tried again, on which methods, how often, within what time).
 */
import { isScalar, isSeq } from 'yaml';
import { optional, type Cursor, type Reader } from '../reader.js';
import type { HashKey, QueueConfig, RetryCondition, RetryConfig } from '../types.js';
import { readDuration } from './limits.js';
import { TOKEN } from '../../util/http-token.js';

const HASH_KEY_FORMAT = 'client_ip, path, header:NAME or cookie:NAME';
/** RFC 6265 cookie-name: a token too. */
const COOKIE = TOKEN;

/** RFC 9110 §9.2.2: a retry cannot do harm the first attempt did not already do. */
export const IDEMPOTENT_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
export const RETRY_CONDITIONS: readonly RetryCondition[] = Object.freeze(['connect_failure', 'reset', 'timeout', '502', '503', '504']);

/** Today's rule: a connect failure moves to the next target, a reset is tried once more, idempotent requests only. */
export const DEFAULT_RETRY: RetryConfig = Object.freeze({
  tries: 0,
  on: Object.freeze(['connect_failure', 'reset'] as RetryCondition[]),
  methods: IDEMPOTENT_METHODS,
  timeout: 0,
  replayBodies: false,
});

export function readHashKey(r: Reader, cur: Cursor): HashKey | undefined {
  const text = r.string(cur);
  if (text === undefined) return undefined;
  if (text === 'client_ip') return { kind: 'client_ip' };
  if (text === 'path') return { kind: 'path' };
  const colon = text.indexOf(':');
  const kind = colon === -1 ? '' : text.slice(0, colon);
  const name = text.slice(colon + 1);
  if (kind === 'header' && TOKEN.test(name)) return { kind: 'header', name: name.toLowerCase() };
  if (kind === 'cookie' && COOKIE.test(name)) return { kind: 'cookie', name };
  return r.mismatch(cur, HASH_KEY_FORMAT);
}

/** `queue: {size, timeout}`: `size` is required, `timeout` defaults to nginx's 60s. */
export function readQueue(r: Reader, cur: Cursor): QueueConfig | undefined {
  const f = r.fields(cur, ['size', 'timeout']);
  if (f === undefined) return undefined;
  const size = optional(f.required('size'), (c) => r.integer(c, 1, 1_000_000, 'an integer from 1 to 1000000'));
  const timeout = optional(f.get('timeout'), (c) => readDuration(r, c, false)) ?? 60_000;
  return size === undefined ? undefined : { size, timeout };
}

/** `retry: {tries, on, methods, timeout}`; whatever is left out keeps today's rule. */
export function readRetry(r: Reader, cur: Cursor): RetryConfig | undefined {
  const f = r.fields(cur, ['tries', 'on', 'methods', 'timeout']);
  if (f === undefined) return undefined;
  const tries = optional(f.get('tries'), (c) => r.integer(c, 0, 100, 'an integer from 0 to 100 (0 = every target once)'));
  const on = optional(f.get('on'), (c) => readConditions(r, c));
  const methods = optional(f.get('methods'), (c) => readMethods(r, c));
  const timeout = optional(f.get('timeout'), (c) => readDuration(r, c, true));
  return {
    tries: tries ?? DEFAULT_RETRY.tries,
    on: on ?? DEFAULT_RETRY.on,
    methods: methods ?? DEFAULT_RETRY.methods,
    timeout: timeout ?? DEFAULT_RETRY.timeout,
    replayBodies: true,
  };
}

function readConditions(r: Reader, cur: Cursor): RetryCondition[] | undefined {
  const items = isSeq(cur.node) ? r.list(cur) : [cur];
  if (items === undefined) return undefined;
  const out: RetryCondition[] = [];
  let bad = false;
  for (const item of items) {
    // `502` unquoted is a YAML number: accept it as the status it means.
    const v = isScalar(item.node) ? item.node.value : undefined;
    const text = typeof v === 'number' ? String(v) : v;
    if (typeof text === 'string' && (RETRY_CONDITIONS as readonly string[]).includes(text)) {
      if (!out.includes(text as RetryCondition)) out.push(text as RetryCondition);
    } else {
      bad = true;
      r.mismatch(item, `one of ${RETRY_CONDITIONS.join(', ')}`);
    }
  }
  return bad ? undefined : out;
}

/** Method names as sent (methods are case-sensitive), `idempotent` for RFC 9110's list. */
function readMethods(r: Reader, cur: Cursor): string[] | undefined {
  const items = isSeq(cur.node) ? r.list(cur) : [cur];
  if (items === undefined) return undefined;
  const out = new Set<string>();
  let bad = false;
  for (const item of items) {
    const m = r.string(item);
    if (m === undefined) bad = true;
    else if (m === 'idempotent') for (const x of IDEMPOTENT_METHODS) out.add(x);
    else if (TOKEN.test(m)) out.add(m);
    else {
      bad = true;
      r.mismatch(item, 'a method like GET or POST, or idempotent');
    }
  }
  return bad ? undefined : [...out];
}
