#!/usr/bin/env node
/**
 * @module Where a drain's hand-off time goes: reads an error log written at `log.level: debug` (e.g.
 * `scripts/upgrade-drill --log-level debug --keep`) and prints, per draining worker, the hand-offs by kind, the
 * time from its drain to its first offer, its last answer and its exit, and per hop the spread of the time each
 * offer spent there: queued in the sender's channel (offered -> written), the master's relay (-> relaying:
 * reading; -> relayed: queued on the next channel), the receiver (-> received, -> adopted) and the answer's way back.
 * Usage: node scripts/lib/handoff-trace.mjs ERROR_LOG [--since ISO_TIME]
 */
import fs from 'node:fs';

const [file, ...rest] = process.argv.slice(2);
if (!file || file === '-h' || file === '--help') {
  process.stdout.write('usage: node scripts/lib/handoff-trace.mjs ERROR_LOG [--since ISO_TIME]\n');
  process.exit(file ? 0 : 2);
}
const since = rest[0] === '--since' ? Date.parse(rest[1]) : 0;

const lines = [];
for (const text of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!text.startsWith('{')) continue;
  let o;
  try {
    o = JSON.parse(text);
  } catch {
    continue;
  }
  o.t = Date.parse(o.time);
  if (o.t >= since) lines.push(o);
}
lines.sort((a, b) => a.t - b.t);

/** Per hand-off id: the time of each step (the first one seen; relay steps per master pid). */
const offers = new Map();
const drains = new Map();
const exits = new Map();
const warnings = [];
const step = (id, name, t, extra) => {
  let o = offers.get(id);
  if (!o) offers.set(id, (o = { id, steps: {} }));
  if (o.steps[name] === undefined) o.steps[name] = t;
  Object.assign(o, extra);
};
for (const l of lines) {
  const id = l.handoff;
  switch (l.msg) {
    case 'draining':
      if (l.role === 'worker' && l.handoff) drains.set(l.pid, l.t);
      break;
    case 'drained: connections handed over to serving workers':
      exits.set(l.pid, l.t);
      break;
    case 'handoff: offered': step(id, 'offered', l.t, { kind: l.kind, sender: l.pid }); break;
    case 'handoff: written': step(id, `written${l.part}`, l.t); break;
    case 'handoff: relaying': step(id, `relaying@${l.pid}.${l.part}`, l.t, { hops: new Set([...(offers.get(id)?.hops ?? []), l.pid]) }); break;
    case 'handoff: relayed': step(id, `relayed@${l.pid}.${l.part}`, l.t); break;
    case 'handoff: received': step(id, 'received', l.t, { receiver: l.pid }); break;
    case 'handoff: adopted': step(id, 'adopted', l.t); break;
    case 'handoff: answer relayed': step(id, `answer@${l.pid}`, l.t); break;
    case 'handoff: answered': step(id, 'answered', l.t, { outcome: l.outcome, reason: l.reason }); break;
    default:
      if (l.level === 'warn' && /hand-?off/i.test(l.msg)) warnings.push(l);
  }
}

const pct = (xs, p) => {
  if (!xs.length) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const spread = (xs) => (xs.length ? `n=${xs.length} p50 ${pct(xs, 50)} p90 ${pct(xs, 90)} max ${pct(xs, 100)} ms` : 'n=0');

const bySender = new Map();
for (const o of offers.values()) {
  if (o.sender === undefined) continue;
  if (!bySender.has(o.sender)) bySender.set(o.sender, []);
  bySender.get(o.sender).push(o);
}
const iso = (t) => new Date(t).toISOString().slice(11, 23);
for (const [pid, list] of bySender) {
  const d = drains.get(pid);
  const first = Math.min(...list.map((o) => o.steps.offered));
  const lastAnswer = Math.max(...list.map((o) => o.steps.answered ?? 0));
  const kinds = {};
  for (const o of list) kinds[`${o.kind}:${o.outcome ?? 'none'}${o.reason ? `/${o.reason}` : ''}`] = (kinds[`${o.kind}:${o.outcome ?? 'none'}${o.reason ? `/${o.reason}` : ''}`] ?? 0) + 1;
  console.log(`worker ${pid}: drain ${d ? iso(d) : '?'}; first offer +${d ? first - d : '?'} ms; last answer +${d ? lastAnswer - d : '?'} ms; drained +${exits.has(pid) && d ? exits.get(pid) - d : '?'} ms; ${JSON.stringify(kinds)}`);
  for (const kind of ['websocket', 'http1']) {
    const of = list.filter((o) => o.kind === kind);
    if (!of.length) continue;
    const offered = of.map((o) => o.steps.offered - (d ?? first));
    console.log(`  ${kind}: offered from +${Math.min(...offered)} to +${Math.max(...offered)} ms after the drain; offered -> answered ${spread(of.filter((o) => o.steps.answered).map((o) => o.steps.answered - o.steps.offered))}`);
  }
}

// Per hop, over all offers (the last part of each: a tunnel's two parts travel one after the other).
const hops = { 'offered -> written (sender channel)': [], 'written -> relaying (first master reads)': [], 'relaying -> relayed (first master channel out)': [], 'relayed -> received (receiver reads all parts)': [], 'received -> adopted (answer written)': [], 'adopted -> answered (answer back)': [] };
for (const o of offers.values()) {
  const s = o.steps;
  const parts = Object.keys(s).filter((k) => k.startsWith('written')).length;
  const last = parts - 1;
  const relayKeys = Object.keys(s).filter((k) => k.startsWith('relaying@') && k.endsWith(`.${last}`)).sort((a, b) => s[a] - s[b]);
  const firstRelay = relayKeys[0];
  const relayedKey = firstRelay?.replace('relaying', 'relayed');
  const add = (name, a, b) => { if (a !== undefined && b !== undefined) hops[name].push(b - a); };
  add('offered -> written (sender channel)', s.offered, s[`written${last}`]);
  add('written -> relaying (first master reads)', s[`written${last}`], firstRelay && s[firstRelay]);
  add('relaying -> relayed (first master channel out)', firstRelay && s[firstRelay], relayedKey && s[relayedKey]);
  const lastRelayed = Math.max(...Object.keys(s).filter((k) => k.startsWith('relayed@')).map((k) => s[k]));
  add('relayed -> received (receiver reads all parts)', Number.isFinite(lastRelayed) ? lastRelayed : undefined, s.received);
  add('received -> adopted (answer written)', s.received, s.adopted);
  add('adopted -> answered (answer back)', s.adopted, s.answered);
}
console.log('hops (ms):');
for (const [name, xs] of Object.entries(hops)) console.log(`  ${name}: ${spread(xs)}`);
if (warnings.length) {
  console.log(`warnings (${warnings.length}):`);
  for (const w of warnings.slice(0, 20)) console.log(`  ${w.time} pid ${w.pid} ${w.code ?? ''} ${w.msg}`);
}
