/** @module Golden tests, as Caddy's adapt tests: each `<case>.yaml` against `<case>.expected.txt` or `<case>.expected.json`. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { formatConfigError } from '../../../lib/config/errors.js';
import { loadConfig } from '../../../lib/config/load.js';
import type { ConfigError } from '../../../lib/config/types.js';

/** The compiled test runs from dist/test/unit/config; the fixtures are not compiled, so resolve from the repo root. */
const FIXTURES = path.resolve(fileURLToPath(import.meta.url), '../../../../../test/fixtures/config');

/** `file:line:col: message` relative to `dir`, as `baton -t` prints it when run from there. */
function relativeLines(errors: readonly ConfigError[], dir = FIXTURES): string[] {
  return errors.map((e) => formatConfigError(e).split(`${dir}/`).join(''));
}

/** Fixtures whose result depends on the machine (workers: auto), asserted in load.test.ts instead. */
const CHECKED_ELSEWHERE = new Set(['minimal']);

const cases = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length)).sort();

t.ok(cases.length >= 10, 'the fixtures directory is found');

for (const name of cases) {
  if (CHECKED_ELSEWHERE.has(name)) continue;
  const file = path.join(FIXTURES, `${name}.yaml`);
  const txt = path.join(FIXTURES, `${name}.expected.txt`);
  const json = path.join(FIXTURES, `${name}.expected.json`);

  if (existsSync(txt)) {
    t.test(`${name}.yaml is rejected with exactly the errors in ${name}.expected.txt`, async (t) => {
      const result = loadConfig(file);
      t.equal(result.ok, false);
      if (result.ok) return;
      t.equal(relativeLines(result.errors).join('\n'), readFileSync(txt, 'utf8').trimEnd());
    });
  } else if (existsSync(json)) {
    t.test(`${name}.yaml loads to exactly the config in ${name}.expected.json`, async (t) => {
      const result = loadConfig(file);
      t.same(result.ok ? [] : relativeLines(result.errors), [], 'no errors');
      if (!result.ok) return;
      const actual = JSON.parse(JSON.stringify(result.config).split(FIXTURES).join('<dir>'));
      t.strictSame(actual, JSON.parse(readFileSync(json, 'utf8')));
    });
  } else {
    t.fail(`${name}.yaml has an expected file (.expected.txt or .expected.json)`);
  }
}
