/** @module Config errors as an operator reads them: `file:line:col: message`, in file order. */
import type { ConfigError } from './types.js';

export function formatConfigError(e: ConfigError): string {
  return `${e.file}:${e.line}:${e.col}: ${e.message}`;
}

/** File order reads better than discovery order (cross-references are checked after their targets). Stable. */
export function sortConfigErrors(errors: readonly ConfigError[]): ConfigError[] {
  return [...errors].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
}
