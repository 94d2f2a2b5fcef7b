/** @module The result of parsing one config value: a value, or a short message saying what was expected. */

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

export function parsed<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

export function expected<T>(what: string, got: string | number): Parsed<T> {
  return { ok: false, message: `expected ${what}, got ${quote(got)}` };
}

/** Strings are quoted so an empty or padded value is visible in the message; numbers are not, like YAML. */
export function quote(got: string | number): string {
  return typeof got === 'number' ? String(got) : JSON.stringify(got);
}
