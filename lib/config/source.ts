/** @module Read a config file into a YAML document that keeps node positions; all syntax errors become ConfigErrors. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, visit, type Document, type YAMLError } from 'yaml';
import { positionOf } from './locate.js';
import type { ConfigError } from './types.js';

export interface Source {
  /** Absolute path of the file. */
  readonly file: string;
  /** Directory that relative paths in the file resolve against. */
  readonly dir: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

export type SourceResult =
  | { readonly ok: true; readonly source: Source }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

export function readSource(file: string): SourceResult {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ file: abs, line: 1, col: 1, message: (err as Error).message }] };
  }
  return parseSource(abs, text);
}

/** Split from readSource so the parser can be tested on strings. */
export function parseSource(abs: string, text: string): SourceResult {
  const lines = new LineCounter();
  // prettyErrors would append a multi-line code frame to every message; we print one line per problem.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  // Warnings (an unknown !tag, for example) are errors here: a value silently read as something else is worse.
  const problems = [...doc.errors, ...doc.warnings].map((e) => ({ file: abs, ...positionOf(lines, e.pos[0]), message: describe(e) }));
  // The parser accepts `*name` with no `&name` before it and only fails when converting to JS; catch it here
  // so the readers can rely on every alias resolving.
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) === undefined) problems.push({ file: abs, ...positionOf(lines, node), message: `unknown alias *${node.source}` });
    },
  });
  if (problems.length > 0) return { ok: false, errors: problems };
  return { ok: true, source: { file: abs, dir: path.dirname(abs), doc, lines } };
}

function describe(e: YAMLError): string {
  if (e.code === 'MULTIPLE_DOCS') return 'expected a single YAML document';
  // Lower-case the first word like our own messages, but leave acronyms (YAML) alone.
  return /^[A-Z][a-z]/.test(e.message) ? e.message.charAt(0).toLowerCase() + e.message.slice(1) : e.message;
}
