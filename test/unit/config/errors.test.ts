/** @module The `file:line:col: message` format and file-order sorting of config errors. */
import t from 'tap';
import { formatConfigError, sortConfigErrors } from '../../../lib/config/errors.js';

t.test('an error is formatted as file:line:col: message', async (t) => {
  t.equal(formatConfigError({ file: '/etc/baton/baton.yaml', line: 12, col: 5, message: 'workers: expected an integer >= 1 or "auto", got "many"' }),
    '/etc/baton/baton.yaml:12:5: workers: expected an integer >= 1 or "auto", got "many"');
});

t.test('errors sort by line then column, keeping discovery order for the same position', async (t) => {
  const e = (line: number, col: number, message: string) => ({ file: 'f', line, col, message });
  t.strictSame(sortConfigErrors([e(9, 1, 'c'), e(2, 7, 'b'), e(2, 3, 'a'), e(9, 1, 'd')]).map((x) => x.message), ['a', 'b', 'c', 'd']);
});
