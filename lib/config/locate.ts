/** @module Where a YAML node starts, as a 1-based line and column, from its `range` and the source's LineCounter. */
import type { LineCounter } from 'yaml';

export interface Position {
  readonly line: number;
  readonly col: number;
}

/** Anything the parser produced with a range: nodes, and the offsets of syntax errors. */
export interface Ranged {
  readonly range?: readonly [number, number, number] | null | undefined;
}

export function positionOf(lines: LineCounter, node: Ranged | number | null | undefined): Position {
  const offset = typeof node === 'number' ? node : node?.range?.[0];
  // Nodes built by the parser always have a range; the fallback only keeps a broken invariant visible, not fatal.
  if (offset === undefined) return { line: 1, col: 1 };
  const { line, col } = lines.linePos(offset);
  return { line, col };
}
