/**
 * @module The retry policy (`upstreams.NAME.retry`), as pure decisions: may a failed attempt be tried again?
 * What failed (a connect failure, a reset, a timeout, a 502/503/504 answer) must be in `on`; a failure after the
 * request may have reached the upstream needs a method in `methods` (a connect failure sent nothing: any method
 * may move on); the body must be replayable (none, or buffered; a streamed body is gone once read); `tries` and
 * the time budget must not be spent. The default policy is the rule baton always had: a connect failure moves
 * on to every other target once, a reset is tried once more (on a new connection), idempotent requests only.
 */
import type { RetryCondition, RetryConfig } from '../../config/types.js';
import type { FailureKind } from '../errors.js';

/** What failed, in the policy's words; null: nothing a retry could cure (the client, a bug, a bad response). */
export function conditionOf(kind: FailureKind): RetryCondition | null {
  switch (kind) {
    case 'connect': return 'connect_failure';
    case 'reset': return 'reset';
    case 'timeout': return 'timeout';
    default: return null;
  }
}

/** The statuses a policy may retry, as its `on` names them. */
export function statusCondition(status: number): RetryCondition | null {
  return status === 502 ? '502' : status === 503 ? '503' : status === 504 ? '504' : null;
}

export interface AttemptFacts {
  readonly method: string;
  /** The body can be sent again from its start (no body, a buffered one, or a streamed one not read yet). */
  readonly replayable: boolean;
  /** The request has a body (any kind). */
  readonly hasBody: boolean;
  /** Attempts made so far, the failed one included. */
  readonly attempts: number;
  /** Retries after anything but a connect failure so far (the default policy allows one). */
  readonly retries: number;
  /** ms since the first attempt started. */
  readonly elapsed: number;
}

export function mayRetry(policy: RetryConfig, condition: RetryCondition | null, f: AttemptFacts): boolean {
  if (condition === null || !policy.on.includes(condition)) return false;
  if (!f.replayable) return false;
  if (condition !== 'connect_failure' && !policy.methods.includes(f.method)) return false;
  // Without a `retry` key, the old rule: a request with a body is not sent again once it may have reached the upstream.
  if (condition !== 'connect_failure' && f.hasBody && !policy.replayBodies) return false;
  if (policy.timeout > 0 && f.elapsed >= policy.timeout) return false;
  if (policy.tries > 0) return f.attempts < policy.tries;
  // The default rule: connect failures until the targets run out, one retry for anything else.
  return condition === 'connect_failure' || f.retries === 0;
}
