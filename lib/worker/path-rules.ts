/**
 * @module A route's path rules: `strip_prefix` (the route's `path` removed from the forwarded path, a leading `/`
 * kept) and `add_prefix`. They work on the path routing saw: when the request's own path is already normal (no
 * `%`, dot segments, `//`, `\` or `;`: nearly always) it is rewritten as sent; otherwise the normalized, decoded
 * path is rewritten and sent percent-encoded, so that `/api/%2e%2e/x` or `/api/../../x` cannot climb out of
 * the prefix an upstream is given (nginx does the same with `proxy_pass http://app/;`). The query string is
 * kept as it is; the access log still shows the target as received.
 */

export interface PathRules {
  /** Characters removed from the start of the path (the route's `path`); 0 = none. */
  readonly strip: number;
  /** Prepended; '' = none. */
  readonly add: string;
}

export function compilePathRules(routePath: string, stripPrefix: boolean, addPrefix: string): PathRules | null {
  if (!stripPrefix && addPrefix === '') return null;
  return { strip: stripPrefix ? routePath.length : 0, add: addPrefix };
}

/** The forwarded target for `target` (origin form, as received), whose routing path `rpath` matched the route. */
export function rewriteTarget(rules: PathRules, target: string, rpath: string): string {
  const q = target.indexOf('?');
  const raw = q === -1 ? target : target.slice(0, q);
  // rpath starts with the route's path (that is how it matched); so does raw when it equals rpath.
  const rest = rules.strip > 0 ? rpath.slice(rules.strip) : rpath;
  let path = raw === rpath ? rest : encodePath(rest);
  if (path.charCodeAt(0) !== 47 /* / */) path = '/' + path;
  if (rules.add !== '') {
    path = rules.add.charCodeAt(rules.add.length - 1) === 47 ? rules.add + path.slice(1) : rules.add + path;
  }
  return q === -1 ? path : path + target.slice(q);
}

/** A decoded path as request-target text: what encodeURI escapes, and `?`, `#` (data here, not delimiters). */
function encodePath(path: string): string {
  return encodeURI(path).replace(/[?#]/g, (c) => (c === '?' ? '%3F' : '%23'));
}
