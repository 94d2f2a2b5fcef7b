import t from 'tap';
import { REQUESTS, REQUEST_DURATION, type FamilyDef } from '../../../lib/metrics/families.js';
import { parseExposition, sampleValue } from '../../helpers/metrics-parse.js';
import { escapeLabelValue, Exposition, formatValue, labelKey, withLabel } from '../../../lib/metrics/text.js';

t.test('label values escape backslash, double quote and line feed, and read back unchanged', async (t) => {
  const nasty = 'a\\b"c\nd';
  t.equal(escapeLabelValue(nasty), 'a\\\\b\\"c\\nd');
  const text = new Exposition().scalar(REQUESTS, [[labelKey([['route', nasty], ['upstream', 'x']]), 3]]).text();
  const { samples } = parseExposition(text);
  t.same(samples[0]!.labels, { route: nasty, upstream: 'x' });
  t.equal(samples[0]!.value, 3);
});

t.test('label keys refuse invalid or reserved label names', async (t) => {
  t.throws(() => labelKey([['bad-name', 'x']]));
  t.throws(() => labelKey([['__name__', 'x']]));
  t.equal(labelKey([]), '');
  t.equal(withLabel('', 'le', '1'), 'le="1"');
  t.equal(withLabel('a="b"', 'le', '+Inf'), 'a="b",le="+Inf"');
});

t.test('values are written as Prometheus reads them, infinities and NaN included', async (t) => {
  t.equal(formatValue(3), '3');
  t.equal(formatValue(0.25), '0.25');
  t.equal(formatValue(Infinity), '+Inf');
  t.equal(formatValue(-Infinity), '-Inf');
  t.equal(formatValue(NaN), 'NaN');
});

t.test('each family gets exactly one HELP and one TYPE line, before its samples, series sorted', async (t) => {
  const gauge: FamilyDef = { name: 'x_open', type: 'gauge', help: 'Open things.\nSecond line \\ backslash.' };
  const text = new Exposition()
    .scalar(REQUESTS, [['route="/b"', 2], ['route="/a"', 1]])
    .scalar(gauge, [['', 7]])
    .text();
  t.equal(text, [
    `# HELP baton_requests_total ${REQUESTS.help}`,
    '# TYPE baton_requests_total counter',
    'baton_requests_total{route="/a"} 1',
    'baton_requests_total{route="/b"} 2',
    '# HELP x_open Open things.\\nSecond line \\\\ backslash.',
    '# TYPE x_open gauge',
    'x_open 7',
    '',
  ].join('\n'));
  const { families } = parseExposition(text);
  t.same([...families.keys()], ['baton_requests_total', 'x_open']);
});

t.test('writing a family twice is refused: a scrape would otherwise be rejected', async (t) => {
  const e = new Exposition().scalar(REQUESTS, []);
  t.throws(() => e.scalar(REQUESTS, []), /written twice/);
});

t.test('a histogram is written with cumulative buckets, +Inf, _sum and _count', async (t) => {
  const fam: FamilyDef = { name: 'x_seconds', type: 'histogram', help: 'h', buckets: [0.1, 1] };
  const text = new Exposition().histogram(fam, [['route="/"', { buckets: [2, 3, 1], sum: 4.5 }]]).text();
  t.equal(text, [
    '# HELP x_seconds h',
    '# TYPE x_seconds histogram',
    'x_seconds_bucket{route="/",le="0.1"} 2',
    'x_seconds_bucket{route="/",le="1"} 5',
    'x_seconds_bucket{route="/",le="+Inf"} 6',
    'x_seconds_sum{route="/"} 4.5',
    'x_seconds_count{route="/"} 6',
    '',
  ].join('\n'));
  const { samples } = parseExposition(text);
  t.equal(sampleValue(samples, 'x_seconds_count', { route: '/' }), 6);
});

t.test('histogram series whose buckets do not match the family bounds are left out, not misreported', async (t) => {
  const text = new Exposition().histogram(REQUEST_DURATION, [['route="/"', { buckets: [1, 2], sum: 1 }]]).text();
  t.notMatch(text, /_bucket/);
  t.match(text, /# TYPE baton_request_duration_seconds histogram/);
});

t.test('the parser rejects a second HELP or TYPE, stray samples and broken labels', async (t) => {
  t.throws(() => parseExposition('# HELP a x\n# TYPE a counter\na 1\n# HELP a y\n'), /second HELP/);
  t.throws(() => parseExposition('# TYPE a counter\n# TYPE a counter\n'), /second TYPE/);
  t.throws(() => parseExposition('# TYPE a counter\nb 1\n'), /outside/);
  t.throws(() => parseExposition('# TYPE a counter\na{x="1} 1\n'), /bad labels/);
  t.throws(() => parseExposition('# TYPE a counter\na 1'), /line feed/);
  t.throws(() => parseExposition('# TYPE a counter\na one\n'), /bad value/);
});
