/** @module Values with request variables: parsed once, rendered per request. */
import t from 'tap';
import { parseTemplate, render, type VariableSource } from '../../../lib/util/template.js';

const src: VariableSource = { client: '203.0.113.9', hostname: 'example.com', scheme: 'https', requestId: 'abc-1', uri: '/a/b?x=1&y=2' };
const renderText = (text: string, s = src): string => {
  const p = parseTemplate(text);
  if (!p.ok) throw new Error(p.message);
  return render(p.value, s);
};

t.test('every variable renders from the request', async (t) => {
  t.equal(renderText('$client_ip|$host|$scheme|$request_id|$path|$query|$request_uri'), '203.0.113.9|example.com|https|abc-1|/a/b|x=1&y=2|/a/b?x=1&y=2');
  t.equal(renderText('https://$host$request_uri'), 'https://example.com/a/b?x=1&y=2');
  t.equal(renderText('${host}name and $$5'), 'example.comname and $5', 'braces end a name; $$ is a dollar');
  t.equal(renderText('$path|$query', { ...src, uri: '/p' }), '/p|', 'no query: empty');
  t.equal(renderText('https://$host/', { ...src, hostname: '::1' }), 'https://[::1]/', 'an IPv6 host keeps its brackets');
  t.equal(renderText('plain'), 'plain');
});

t.test('a bad template is refused with what is wrong', async (t) => {
  t.match(parseTemplate('$hostname'), { ok: false, message: /unknown variable \$hostname \(write \$\{host\}name/ });
  t.match(parseTemplate('${nope}'), { ok: false, message: /unknown variable \$nope; known: \$client_ip/ });
  t.match(parseTemplate('5$'), { ok: false, message: /must start a variable/ });
  t.match(parseTemplate('${host'), { ok: false, message: /unclosed/ });
  t.match(parseTemplate('$__proto__'), { ok: false, message: /unknown variable/ });
});
