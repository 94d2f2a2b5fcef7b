/**
 * @module `baton status`: /status for a person, and an exit code a script can test (0 serving, 6 running but not
 * serving, 3 not running), with one sentence instead of a socket error when nothing answers.
 */
import type { Config } from '../config/types.js';
import { checkMaster } from '../control/master-process.js';
import { EXIT } from '../control/exit-codes.js';
import { processAlive, readPidFile } from '../control/pid-file.js';
import { adminBase, adminCall } from './control-client.js';
import type { Out } from './running-master.js';

/** The parts of GET /status this command prints; fields added later by the master are optional here. */
export interface StatusBody {
  version: string;
  pid: number;
  phase: string;
  generation: number | null;
  uptime: number;
  workers: { pid: number; generation: number; state: string; connections: number; requests: number; rss?: number }[];
  listeners: { listen: string; address: string }[];
  upgrade: { oldMaster: number; newMaster: number | null; stage: string } | null;
  upstreams?: { name: string; targets: { target: string; state: 'up' | 'down'; since?: number | string | null; reason?: string | null }[] }[];
  lastUpgradeFailure?: { reason: string; at?: number | string | null } | null;
}

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

/** Epoch milliseconds or an ISO string, as an ISO time. */
function when(t: number | string | null | undefined): string | null {
  if (t === null || t === undefined) return null;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}

export function formatStatus(s: StatusBody): string[] {
  const lines = [`baton ${s.version}  master ${s.pid}  ${s.phase}  generation ${s.generation ?? '-'}  up ${s.uptime}s`];
  if (s.upgrade) lines.push(`upgrade: old master ${s.upgrade.oldMaster} → new master ${s.upgrade.newMaster ?? '(starting)'} (${s.upgrade.stage})`);
  for (const l of s.listeners) lines.push(`listen   ${l.listen}${l.address !== l.listen ? ` (${l.address})` : ''}`);
  for (const w of s.workers) {
    const rss = typeof w.rss === 'number' ? `  ${mib(w.rss)}` : '';
    lines.push(`worker   ${w.pid}  gen ${w.generation}  ${w.state.padEnd(8)}  ${w.connections} conns  ${w.requests} reqs${rss}`);
  }
  for (const u of s.upstreams ?? []) {
    for (const target of u.targets) {
      const since = when(target.since);
      const reason = target.reason ? ` (${target.reason})` : '';
      lines.push(`upstream ${u.name}  ${target.target}  ${target.state.padEnd(4)}${since ? `  since ${since}` : ''}${reason}`);
    }
  }
  if (s.lastUpgradeFailure) {
    const at = when(s.lastUpgradeFailure.at);
    lines.push(`last upgrade failure${at ? ` at ${at}` : ''}: ${s.lastUpgradeFailure.reason}`);
  }
  return lines;
}

/** What to print and exit with for an answer from /status. */
export function statusOutcome(httpStatus: number, body: string, base: string): { lines: string[]; errors: string[]; code: number } {
  let parsed: StatusBody | null = null;
  try {
    parsed = JSON.parse(body) as StatusBody;
  } catch {
    /* not ours */
  }
  if ((httpStatus !== 200 && httpStatus !== 503) || parsed === null || typeof parsed.pid !== 'number') {
    return { lines: [], errors: [`baton: ${base}/status answered HTTP ${httpStatus} without baton's status: is admin.listen another server's address?`], code: EXIT.NOT_RUNNING };
  }
  const lines = formatStatus(parsed);
  if (httpStatus === 503) return { lines, errors: [`baton is not serving: master ${parsed.pid} has no ready worker`], code: EXIT.NOT_SERVING };
  return { lines, errors: [], code: EXIT.OK };
}

/** One sentence for "nothing answers", with what the pid file says. */
function notAnswering(config: Config, base: string, cause: string): { sentence: string; code: number } {
  const read = readPidFile(config.pidFile);
  if (read.ok && processAlive(read.pid) && checkMaster(read.pid).kind !== 'other') {
    return { sentence: `baton master ${read.pid} is running, but its admin listener ${base} does not answer (${cause}): it may be starting or stopping`, code: EXIT.NOT_SERVING };
  }
  const pid = !read.ok ? read.reason.replace(/ \(is baton running\?\)$/, '') : `pid file ${config.pidFile} names process ${read.pid}, which is not a running baton master`;
  return { sentence: `baton is not running: nothing answers on ${base}, and ${pid}`, code: EXIT.NOT_RUNNING };
}

export async function statusCommand(config: Config, out: Out, err: Out): Promise<number> {
  const base = adminBase(config);
  if (!base) {
    err('baton: status needs the admin listener (admin.listen with a fixed port)');
    return EXIT.USAGE;
  }
  let res: { status: number; body: string };
  try {
    res = await adminCall(base, 'GET', '/status', 5000);
  } catch (e) {
    const { sentence, code } = notAnswering(config, base, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    err(sentence);
    return code;
  }
  const outcome = statusOutcome(res.status, res.body, base);
  for (const l of outcome.lines) out(l);
  for (const e of outcome.errors) err(e);
  return outcome.code;
}

/** Why the last upgrade failed, as the (old) master's /status says, when it says. */
export async function lastUpgradeFailure(config: Config): Promise<string | null> {
  const base = adminBase(config);
  if (!base) return null;
  try {
    const res = await adminCall(base, 'GET', '/status', 5000);
    const body = JSON.parse(res.body) as StatusBody;
    return body.lastUpgradeFailure?.reason ?? null;
  } catch {
    return null;
  }
}
