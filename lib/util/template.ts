/**
 * @module Values with request variables (`https://$host$request_uri`, `${client_ip}`): parsed once per config
 * into literal and variable parts, then rendered per request by concatenation, with no parsing. `$$` is a dollar
 * sign. The variable table is the one place that says which variables exist.
 */
import { parsed, type Parsed } from './parsed.js';

/** The variables, by name; each renders from the request's `VariableSource`. */
export const enum Var {
  ClientIp,
  Host,
  Scheme,
  RequestId,
  Path,
  Query,
  RequestUri,
}

const VARIABLES: Readonly<Record<string, Var>> = {
  client_ip: Var.ClientIp,
  host: Var.Host,
  scheme: Var.Scheme,
  request_id: Var.RequestId,
  path: Var.Path,
  query: Var.Query,
  request_uri: Var.RequestUri,
};

export const VARIABLE_NAMES = Object.keys(VARIABLES).map((n) => `$${n}`).join(', ');

/** Literal text, or a variable. */
export type TemplatePart = string | Var;

/** What variables are made of: one request's facts (an Admission has them all). */
export interface VariableSource {
  /** The client address (after `trusted_proxies`). */
  readonly client: string;
  /** Routing host: lower-case, no port ('' when the request named none). */
  readonly hostname: string;
  readonly scheme: 'http' | 'https';
  readonly requestId: string;
  /** The request target as received, in origin form (`/path?query`). */
  readonly uri: string;
}

/** Parse `text`; a message saying what is wrong otherwise. */
export function parseTemplate(text: string): Parsed<readonly TemplatePart[]> {
  const parts: TemplatePart[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '$') {
      literal += c;
      continue;
    }
    if (text[i + 1] === '$') {
      literal += '$';
      i++;
      continue;
    }
    let name: string;
    if (text[i + 1] === '{') {
      const end = text.indexOf('}', i + 2);
      if (end === -1) return fail(`unclosed "\${" in ${JSON.stringify(text)}`);
      name = text.slice(i + 2, end);
      i = end;
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
      if (m === null) return fail(`"$" must start a variable (${VARIABLE_NAMES}), or be written "$$", in ${JSON.stringify(text)}`);
      name = m[0];
      i += name.length;
    }
    const v = Object.hasOwn(VARIABLES, name) ? VARIABLES[name] : undefined;
    if (v === undefined) {
      const prefix = Object.keys(VARIABLES).find((known) => name.startsWith(known));
      const hint = prefix !== undefined ? ` (write \${${prefix}}${name.slice(prefix.length)} for $${prefix} followed by text)` : '';
      return fail(`unknown variable $${name}${hint}; known: ${VARIABLE_NAMES}`);
    }
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push(v);
  }
  if (literal !== '') parts.push(literal);
  return parsed(parts);
}

function fail<T>(message: string): Parsed<T> {
  return { ok: false, message };
}

/** The literal text of a template without variables, else null. */
export function constantOf(parts: readonly TemplatePart[]): string | null {
  if (parts.length === 0) return '';
  return parts.length === 1 && typeof parts[0] === 'string' ? parts[0] : null;
}

/** The literal parts only (for validating what a config wrote). */
export function literalsOf(parts: readonly TemplatePart[]): string {
  let s = '';
  for (const p of parts) if (typeof p === 'string') s += p;
  return s;
}

/** One request's value of the template. */
export function render(parts: readonly TemplatePart[], src: VariableSource): string {
  let s = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    s += typeof p === 'string' ? p : variable(p, src);
  }
  return s;
}

function variable(v: Var, src: VariableSource): string {
  switch (v) {
    case Var.ClientIp: return src.client;
    // An IPv6 literal keeps its brackets, so that `https://$host/` stays a URL.
    case Var.Host: return src.hostname.indexOf(':') === -1 ? src.hostname : `[${src.hostname}]`;
    case Var.Scheme: return src.scheme;
    case Var.RequestId: return src.requestId;
    case Var.Path: {
      const q = src.uri.indexOf('?');
      return q === -1 ? src.uri : src.uri.slice(0, q);
    }
    case Var.Query: {
      const q = src.uri.indexOf('?');
      return q === -1 ? '' : src.uri.slice(q + 1);
    }
    case Var.RequestUri: return src.uri;
  }
}
