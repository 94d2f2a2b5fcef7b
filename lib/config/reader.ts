/** @module Typed reads of YAML nodes that record a positioned ConfigError instead of throwing, so every problem is reported. */
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, type Node } from 'yaml';
import type { Parsed } from '../util/parsed.js';
import { positionOf, type Ranged } from './locate.js';
import type { Source } from './source.js';
import type { ConfigError } from './types.js';

/** A node (aliases already followed) and its path in the document, e.g. `listeners[0].tls.cert`. */
export interface Cursor {
  readonly node: Node;
  readonly path: string;
}

/** One `key: value` of a map; `value` is null when the key has no value (`key:` or `key: ~`). */
export interface Entry {
  readonly key: string;
  readonly keyNode: Node;
  readonly value: Cursor | null;
}

export class Reader {
  readonly errors: ConfigError[] = [];

  constructor(readonly source: Source) {}

  /** Record an error on `at` and return undefined, so `return r.fail(...)` ends a read. */
  fail(at: Ranged, where: string, message: string): undefined {
    const { line, col } = positionOf(this.source.lines, at);
    this.errors.push({ file: this.source.file, line, col, message: where === '' ? message : `${where}: ${message}` });
    return undefined;
  }

  /** Report a type mismatch the same way everywhere: `expected <what>, got <what it is>`. */
  mismatch(cur: Cursor, what: string): undefined {
    return this.fail(cur.node, cur.path, `expected ${what}, got ${describe(cur.node)}`);
  }

  /** The document's top-level node. */
  root(): Cursor | undefined {
    const node = this.source.doc.contents;
    if (node === null || (isScalar(node) && node.value === null)) return this.fail(node ?? { range: [0, 0, 0] }, '', 'the config file is empty');
    return this.follow(node, '');
  }

  /** A map with a fixed set of keys; any other key is an error on that key. */
  fields(cur: Cursor, known: readonly string[]): Fields | undefined {
    const entries = this.entries(cur);
    if (entries === undefined) return undefined;
    const byKey = new Map<string, Entry>();
    for (const e of entries) {
      if (known.includes(e.key)) byKey.set(e.key, e);
      else this.fail(e.keyNode, join(cur.path, e.key), 'unknown key');
    }
    return new Fields(this, cur, byKey);
  }

  /** A map whose keys are names chosen by the user (upstreams, headers). */
  entries(cur: Cursor): Entry[] | undefined {
    if (!isMap(cur.node)) return this.mismatch(cur, 'a map');
    const out: Entry[] = [];
    for (const pair of cur.node.items) {
      const keyNode = pair.key as Node | null;
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        this.fail(keyNode ?? cur.node, cur.path, 'expected a plain key');
        continue;
      }
      const key = String(keyNode.value);
      const valueNode = pair.value as Node | null;
      const isNull = valueNode === null || (isScalar(valueNode) && valueNode.value === null);
      const value = isNull ? null : this.follow(valueNode, join(cur.path, key));
      // Only an alias to nowhere gives undefined (readSource rejects those first); it is reported once, in follow().
      if (value !== undefined) out.push({ key, keyNode, value });
    }
    return out;
  }

  /** A list; `what` names one item for the message when the list must not be empty. */
  list(cur: Cursor, nonEmpty?: string): Cursor[] | undefined {
    if (!isSeq(cur.node)) return this.mismatch(cur, nonEmpty === undefined ? 'a list' : `a list of ${nonEmpty}s`);
    if (nonEmpty !== undefined && cur.node.items.length === 0) return this.fail(cur.node, cur.path, `expected at least one ${nonEmpty}`);
    const items: Cursor[] = [];
    cur.node.items.forEach((item, i) => {
      const followed = this.follow(item as Node, `${cur.path}[${i}]`);
      if (followed !== undefined) items.push(followed);
    });
    return items;
  }

  /** A string; empty strings are refused unless `allowEmpty` (a body may be empty, a path may not). */
  string(cur: Cursor, allowEmpty = false): string | undefined {
    const v = scalarValue(cur.node);
    if (typeof v !== 'string') return this.mismatch(cur, 'a string');
    if (v === '' && !allowEmpty) return this.mismatch(cur, 'a non-empty string');
    return v;
  }

  oneOf<T extends string>(cur: Cursor, values: readonly T[]): T | undefined {
    const v = scalarValue(cur.node);
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return this.mismatch(cur, `one of ${values.join(', ')}`);
  }

  bool(cur: Cursor): boolean | undefined {
    const v = scalarValue(cur.node);
    return typeof v === 'boolean' ? v : this.mismatch(cur, 'true or false');
  }

  integer(cur: Cursor, min: number, max: number, what: string): number | undefined {
    const v = scalarValue(cur.node);
    return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : this.mismatch(cur, what);
  }

  /** A value parsed by one of the util/ parsers, which accept strings and plain numbers. */
  parse<T>(cur: Cursor, what: string, parser: (input: string | number) => Parsed<T>): T | undefined {
    const v = scalarValue(cur.node);
    if (typeof v !== 'string' && typeof v !== 'number') return this.mismatch(cur, what);
    const result = parser(v);
    return result.ok ? result.value : this.fail(cur.node, cur.path, result.message);
  }

  /** A file path; relative paths resolve against the config file's directory, never the working directory. */
  file(cur: Cursor): string | undefined {
    const v = this.string(cur);
    return v === undefined ? undefined : this.resolve(v);
  }

  resolve(file: string): string {
    return path.resolve(this.source.dir, file);
  }

  /** Aliases (`*name`) read as the node they point to; positions then point at the anchored node. */
  private follow(node: Node, where: string): Cursor | undefined {
    if (!isAlias(node)) return { node, path: where };
    const target = node.resolve(this.source.doc);
    if (target === undefined) return this.fail(node, where, `unknown alias *${node.source}`);
    return { node: target, path: where };
  }
}

/** The keys of one fixed-shape map. A key with no value counts as absent, so its default applies. */
export class Fields {
  constructor(private readonly reader: Reader, readonly at: Cursor, private readonly byKey: ReadonlyMap<string, Entry>) {}

  get(key: string): Cursor | undefined {
    return this.byKey.get(key)?.value ?? undefined;
  }

  required(key: string): Cursor | undefined {
    const entry = this.byKey.get(key);
    if (entry === undefined) return this.reader.fail(this.at.node, this.at.path, `missing required key "${key}"`);
    if (entry.value === null) return this.reader.fail(entry.keyNode, join(this.at.path, key), 'expected a value');
    return entry.value;
  }
}

export function join(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

function scalarValue(node: Node): unknown {
  return isScalar(node) ? node.value : undefined;
}

/** What a node is, for `got ...`: strings quoted (and cut short), other scalars as written. */
export function describe(node: Node): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node) || node.value === null) return 'nothing';
  if (typeof node.value === 'string') return JSON.stringify(node.value.length > 60 ? `${node.value.slice(0, 57)}...` : node.value);
  return node.source ?? String(node.value);
}

/** Read an optional value: undefined when absent, otherwise whatever `read` makes of it. */
export function optional<T>(cur: Cursor | undefined, read: (cur: Cursor) => T | undefined): T | undefined {
  return cur === undefined ? undefined : read(cur);
}
