/**
 * @module A route's header rules at work: `request_headers` (with `upstream_host`) on the upstream request's
 * header list, `response_headers` on the client response's. Compiled once per config: names lower-cased into one
 * drop set, values parsed into templates; applying them is one pass over the flat list plus the rendered values.
 * What a rule may name, and the validity of its literal text, was checked by the config loader.
 */
import type { HeaderRules, UpstreamHost } from '../config/types.js';
import { constantOf, parseTemplate, render, type TemplatePart, type VariableSource } from '../util/template.js';

interface Field {
  readonly name: string;
  /** A constant value, or null when `parts` has variables. */
  readonly constant: string | null;
  readonly parts: readonly TemplatePart[];
}

export interface CompiledHeaderRules {
  /** Lower-case names removed from the list first: `remove`, `set`, and `host` unless it is preserved. */
  readonly drop: ReadonlySet<string>;
  /** Appended after the drop: `set` and `add` fields, then a fixed `host`. */
  readonly fields: readonly Field[];
}

/** Null when there is nothing to do (no rules, Host preserved). */
export function compileHeaderRules(rules: HeaderRules | null, host: UpstreamHost = { kind: 'preserve' }): CompiledHeaderRules | null {
  if (rules === null && host.kind === 'preserve') return null;
  const drop = new Set<string>(rules?.remove ?? []);
  const fields: Field[] = [];
  for (const [name, value] of [...(rules?.set ?? []), ...(rules?.add ?? [])]) fields.push(field(name, value));
  for (const [name] of rules?.set ?? []) drop.add(name.toLowerCase());
  // `target`: the pool then sends the target's own host:port (its Host header when the list has none).
  if (host.kind !== 'preserve') drop.add('host');
  if (host.kind === 'fixed') fields.push({ name: 'host', constant: host.host, parts: [host.host] });
  return { drop, fields };
}

function field(name: string, value: string): Field {
  const t = parseTemplate(value);
  if (!t.ok) throw new Error(`header rule ${name}: ${t.message}`); // validated by the config loader
  return { name, constant: constantOf(t.value), parts: t.value };
}

/** Apply `rules` to the flat list `list` in place. */
export function applyHeaderRules(list: string[], rules: CompiledHeaderRules, src: VariableSource): void {
  const drop = rules.drop;
  if (drop.size > 0) {
    let w = 0;
    for (let r = 0; r < list.length; r += 2) {
      const name = list[r]!;
      if (drop.has(name.toLowerCase())) continue;
      list[w++] = name;
      list[w++] = list[r + 1]!;
    }
    list.length = w;
  }
  const fields = rules.fields;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    list.push(f.name, f.constant ?? render(f.parts, src));
  }
}
