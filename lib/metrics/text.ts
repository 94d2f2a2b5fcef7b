/**
 * @module Prometheus text exposition format 0.0.4: label escaping, value formatting, and a writer that puts
 * `# HELP` and `# TYPE` exactly once before each family's samples.
 */
import type { FamilyDef } from './families.js';
import type { HistogramData } from './snapshot.js';

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value inside double quotes: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed escaped. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/**
 * A series key: the label pairs as they appear between the braces, `a="x",b="y"` ('' for none). Keys are
 * built once (per config, per snapshot) and then compared and concatenated as strings.
 */
export function labelKey(pairs: readonly (readonly [string, string])[]): string {
  let out = '';
  for (const [name, value] of pairs) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`invalid label name: ${name}`);
    out += `${out === '' ? '' : ','}${name}="${escapeLabelValue(value)}"`;
  }
  return out;
}

/** Append one more pair to a key. */
export function withLabel(key: string, name: string, value: string): string {
  const pair = labelKey([[name, value]]);
  return key === '' ? pair : `${key},${pair}`;
}

export function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

const braces = (key: string) => (key === '' ? '' : `{${key}}`);
const byKey = <T>(a: readonly [string, T], b: readonly [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

export class Exposition {
  readonly #lines: string[] = [];
  readonly #names = new Set<string>();

  #head(family: FamilyDef): void {
    if (this.#names.has(family.name)) throw new Error(`metric family ${family.name} written twice`);
    this.#names.add(family.name);
    this.#lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
  }

  /** A counter or gauge family; series sorted by key for a stable output. */
  scalar(family: FamilyDef, series: Iterable<readonly [string, number]>): this {
    if (family.type === 'histogram') throw new Error(`${family.name} is a histogram`);
    this.#head(family);
    for (const [key, value] of [...series].sort(byKey)) this.#lines.push(`${family.name}${braces(key)} ${formatValue(value)}`);
    return this;
  }

  /**
   * A histogram family: cumulative `_bucket` lines with `le`, then `_sum` and `_count`. Series whose bucket
   * array does not match the family's bounds (a worker of other code) are left out rather than misreported.
   */
  histogram(family: FamilyDef, series: Iterable<readonly [string, HistogramData]>): this {
    const bounds = family.buckets;
    if (family.type !== 'histogram' || bounds === undefined) throw new Error(`${family.name} is not a histogram`);
    this.#head(family);
    const name = family.name;
    for (const [key, h] of [...series].sort(byKey)) {
      if (h.buckets.length !== bounds.length + 1) continue;
      let cumulative = 0;
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += h.buckets[i]!;
        const le = i < bounds.length ? formatValue(bounds[i]!) : '+Inf';
        this.#lines.push(`${name}_bucket{${withLabel(key, 'le', le)}} ${formatValue(cumulative)}`);
      }
      this.#lines.push(`${name}_sum${braces(key)} ${formatValue(h.sum)}`, `${name}_count${braces(key)} ${formatValue(cumulative)}`);
    }
    return this;
  }

  text(): string {
    return this.#lines.length === 0 ? '' : this.#lines.join('\n') + '\n';
  }
}
