/** @module YAML parsing with positions: syntax errors, tags, multiple documents, aliases. */
import t from 'tap';
import { parseSource } from '../../../lib/config/source.js';

const positions = (text: string) => {
  const result = parseSource('/etc/baton/baton.yaml', text);
  return result.ok ? [] : result.errors.map((e) => `${e.line}:${e.col}: ${e.message}`);
};

t.test('valid YAML parses to a document that knows its file and directory', async (t) => {
  const result = parseSource('/etc/baton/baton.yaml', 'workers: 2\n');
  t.ok(result.ok);
  if (!result.ok) return;
  t.equal(result.source.file, '/etc/baton/baton.yaml');
  t.equal(result.source.dir, '/etc/baton');
  t.strictSame(result.source.doc.toJS(), { workers: 2 });
});

t.test('every YAML syntax error is reported at its own line and column', async (t) => {
  t.strictSame(positions('a: 1\na: 2\nb: [1, 2\nc: 3\n'), [
    '2:1: map keys must be unique',
    '4:1: flow sequence in block collection must be sufficiently indented and end with a ]',
  ]);
});

t.test('an unknown tag is an error, not a value silently read as a string', async (t) => {
  t.strictSame(positions('workers: !cpu 4\n'), ['1:10: unresolved tag: !cpu']);
});

t.test('a second document in the same file is an error', async (t) => {
  t.strictSame(positions('workers: 1\n---\nworkers: 2\n'), ['2:1: expected a single YAML document']);
});

t.test('an alias to an anchor that was never defined is an error on the alias', async (t) => {
  t.strictSame(positions('a: &x 1\nb: *y\n'), ['2:4: unknown alias *y']);
});
