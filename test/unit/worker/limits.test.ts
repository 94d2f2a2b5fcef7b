/** @module Connection-level limits: the connection budget under the file descriptor limit. */
import t from 'tap';
import { connectionBudget } from '../../../lib/worker/limits.js';

t.test('the connection budget leaves room under the file descriptor limit', async (t) => {
  const budget = connectionBudget();
  if (budget === null) return t.pass('no limit here');
  t.ok(budget >= 1);
});
