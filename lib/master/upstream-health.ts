/**
 * @module Upstream target health as the master reports it: the views the serving workers push (passive marks and
 * active checks), merged into one. Workers check on their own and may disagree for up to one interval; a target
 * is reported down as soon as one of them has taken it out, since then some requests no longer reach it.
 */
import type { TargetHealth, UpstreamHealth } from '../ipc/messages.js';

const earlier = (a: string, b: string) => (Date.parse(a) <= Date.parse(b) ? a : b);
const later = (a: string, b: string) => (Date.parse(a) >= Date.parse(b) ? a : b);

function mergeTarget(a: TargetHealth, b: TargetHealth): TargetHealth {
  if (a.state !== b.state) return a.state === 'down' ? a : b;
  // Down: since the first worker took it out. Up: since the last one brought it back.
  if (a.state === 'down') return earlier(a.since, b.since) === a.since ? a : b;
  return later(a.since, b.since) === a.since ? a : b;
}

/** One entry per upstream and target, in the order the first view lists them. */
export function mergeHealth(views: Iterable<readonly UpstreamHealth[]>): UpstreamHealth[] {
  const upstreams = new Map<string, Map<string, TargetHealth>>();
  for (const view of views) {
    for (const up of view) {
      let targets = upstreams.get(up.name);
      if (!targets) upstreams.set(up.name, (targets = new Map()));
      for (const t of up.targets) {
        const seen = targets.get(t.target);
        targets.set(t.target, seen ? mergeTarget(seen, t) : t);
      }
    }
  }
  return [...upstreams].map(([name, targets]) => ({ name, targets: [...targets.values()] }));
}

const isString = (x: unknown): x is string => typeof x === 'string';

/** The shape check for what arrives over IPC. */
export function isHealthView(x: unknown): x is UpstreamHealth[] {
  if (!Array.isArray(x)) return false;
  return x.every((u: unknown) => {
    const up = u as Partial<UpstreamHealth> | null;
    return typeof up === 'object' && up !== null && isString(up.name) && Array.isArray(up.targets) && up.targets.every((t: unknown) => {
      const th = t as Partial<TargetHealth> | null;
      return typeof th === 'object' && th !== null && isString(th.target) && (th.state === 'up' || th.state === 'down') && isString(th.since) && (th.reason === null || isString(th.reason));
    });
  });
}
