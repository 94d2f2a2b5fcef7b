/**
 * @module A strict reader of the Prometheus text format as baton writes it (for tests): every
 * family has one `# HELP` and one `# TYPE`, before its samples, and its samples are contiguous. Throws on the
 * first violation, with the line number.
 */

export interface Sample {
  /** The sample name (`x_total`, `x_bucket`, `x_sum`...). */
  readonly name: string;
  /** The family it belongs to (the name of its `# TYPE`). */
  readonly family: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface ParsedFamily {
  readonly name: string;
  readonly type: string;
  readonly help: string;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value ${s}`);
  return Number(s);
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = text;
  while (rest !== '') {
    const m = LABEL.exec(rest);
    if (m === null) throw new Error(`bad labels {${text}}`);
    if (m[1]! in out) throw new Error(`label ${m[1]} twice`);
    out[m[1]!] = unescape(m[2]!);
    rest = rest.slice(m[0].length);
    if (m[3] === ',' && rest === '') throw new Error(`trailing comma in {${text}}`);
  }
  return out;
}

function belongs(sample: string, family: string, type: string): boolean {
  if (sample === family) return type !== 'histogram';
  if (type === 'histogram') return sample === `${family}_bucket` || sample === `${family}_sum` || sample === `${family}_count`;
  return false;
}

export function parseExposition(text: string): { families: Map<string, ParsedFamily>; samples: Sample[] } {
  const families = new Map<string, ParsedFamily>();
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  let current: ParsedFamily | null = null;
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new Error('the text must end with a line feed');
  lines.forEach((line, i) => {
    const at = `line ${i + 1}: `;
    try {
      let m = HELP.exec(line);
      if (m !== null) {
        if (help.has(m[1]!) || families.has(m[1]!)) throw new Error(`second HELP for ${m[1]}`);
        help.set(m[1]!, m[2]!);
        current = null;
        return;
      }
      m = TYPE.exec(line);
      if (m !== null) {
        if (families.has(m[1]!)) throw new Error(`second TYPE for ${m[1]}`);
        current = { name: m[1]!, type: m[2]!, help: help.get(m[1]!) ?? '' };
        families.set(m[1]!, current);
        return;
      }
      if (line.startsWith('#')) throw new Error(`unexpected comment ${line}`);
      m = SAMPLE.exec(line);
      if (m === null) throw new Error(`not a sample: ${line}`);
      const fam = current as ParsedFamily | null;
      if (fam === null || !belongs(m[1]!, fam.name, fam.type)) throw new Error(`sample ${m[1]} outside its family's block`);
      samples.push({ name: m[1]!, family: fam.name, labels: parseLabels(m[2] ?? ''), value: parseValue(m[3]!) });
    } catch (err) {
      throw new Error(at + (err as Error).message);
    }
  });
  return { families, samples };
}

/** The value of the one sample named `name` whose labels include `labels` (undefined if none; throws if several). */
export function sampleValue(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} samples match ${name} ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** The sum over every sample named `name` whose labels include `labels`. */
export function sumOf(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  let n = 0;
  for (const s of samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) n += s.value;
  return n;
}
