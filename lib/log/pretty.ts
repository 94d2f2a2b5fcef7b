/**
 * @module Log lines for a person at a terminal: when a log goes to stderr or stdout and that is a TTY, each JSON
 * line is rewritten as `time LEVEL role[pid] message key=value...` (access lines as `time METHOD host/path status
 * bytes duration`), coloured unless NO_COLOR is set. Files and pipes keep JSON.
 *
 * Why not pino-pretty: it brings a dozen packages, runs as a transport in a worker thread per process (master and
 * every worker) or needs its own stream plumbing, and our lines have a small fixed shape; this is one function.
 */

const LEVEL_COLOURS: Readonly<Record<string, string>> = { trace: '90', debug: '90', info: '32', warn: '33', error: '31', fatal: '35' };
/** Fields shown in the line's head, not repeated as key=value. */
const HEAD = new Set(['time', 'level', 'pid', 'role', 'generation', 'msg']);

export interface PrettyOptions {
  readonly colour: boolean;
}

function paint(on: boolean, code: string, text: string): string {
  return on ? `\x1b[${code}m${text}\x1b[0m` : text;
}

function clock(time: unknown): string {
  if (typeof time !== 'string') return '--:--:--.---';
  const at = time.indexOf('T');
  return at >= 0 ? time.slice(at + 1, at + 13) : time;
}

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

function errorBlock(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const stack = (err as { stack?: unknown }).stack;
  return typeof stack === 'string' ? '\n    ' + stack.split('\n').join('\n    ') : '';
}

function accessLine(o: Record<string, unknown>, opts: PrettyOptions): string {
  const status = Number(o.status);
  const code = status >= 500 ? '31' : status >= 400 ? '33' : '32';
  const upstream = o.upstream ? ` → ${String(o.upstream)}${o.upstream_time !== null && o.upstream_time !== undefined ? ` (${String(o.upstream_time)} ms)` : ''}` : '';
  return `${clock(o.time)} ${String(o.method)} ${String(o.host ?? '')}${String(o.path)} ${paint(opts.colour, code, String(o.status))} ${String(o.bytes)} B ${String(o.duration)} ms${upstream} ${paint(opts.colour, '90', `${String(o.protocol)} ${String(o.client)} ${String(o.request_id)}`)}\n`;
}

/** One JSON log line (newline included) as a person reads it; a line that is not JSON passes unchanged. */
export function prettyLine(line: string, opts: PrettyOptions): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof o !== 'object' || o === null) return line;
  if (o.level === undefined && 'method' in o && 'status' in o) return accessLine(o, opts);
  const level = String(o.level ?? 'info');
  const who = `${String(o.role ?? 'baton')}[${String(o.pid ?? '?')}]${o.generation !== undefined ? ` g${String(o.generation)}` : ''}`;
  let out = `${clock(o.time)} ${paint(opts.colour, LEVEL_COLOURS[level] ?? '0', level.toUpperCase().padEnd(5))} ${paint(opts.colour, '90', who)} ${String(o.msg ?? '')}`;
  let stack = '';
  for (const [k, v] of Object.entries(o)) {
    if (HEAD.has(k)) continue;
    if (k === 'err') {
      const message = (v as { message?: unknown } | null)?.message;
      out += ` ${paint(opts.colour, '90', 'err=')}${value(message ?? v)}`;
      stack = errorBlock(v);
      continue;
    }
    out += ` ${paint(opts.colour, '90', `${k}=`)}${value(v)}`;
  }
  return out + stack + '\n';
}

/** Make `out` rewrite every line before writing it (pino writes one line per call); returns `out`. */
export function prettify<T extends { write(s: string): boolean }>(out: T, opts: PrettyOptions): T {
  const write = out.write.bind(out);
  out.write = (s: string) => write(prettyLine(s, opts));
  return out;
}
