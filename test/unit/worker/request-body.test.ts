/** @module The request body's helpers: the streaming body limit, the held 100-continue, the upload's idle bound. */
import type http from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import { BodyLimit, awaitsContinue, holdContinue, uploadIdleLimit } from '../../../lib/worker/request-body.js';

async function through(limit: number, chunks: Buffer[]): Promise<{ bytes: number; err: (Error & { code?: string }) | null }> {
  let bytes = 0;
  try {
    await pipeline(Readable.from(chunks), new BodyLimit(limit), new Writable({ write(c: Buffer, _e, cb) { bytes += c.length; cb(); } }));
    return { bytes, err: null };
  } catch (err) {
    return { bytes, err: err as Error & { code?: string } };
  }
}

t.test('BodyLimit passes a body up to its limit and fails with BATON_BODY_TOO_LARGE past it', async (t) => {
  const kb = Buffer.alloc(1024);
  t.same(await through(2048, [kb, kb]), { bytes: 2048, err: null }, 'exactly the limit');
  const over = await through(2048, [kb, kb, Buffer.alloc(1)]);
  t.equal(over.err?.code, 'BATON_BODY_TOO_LARGE');
  t.equal(over.bytes, 2048, 'nothing past the limit went through');
  t.same(await through(0, [kb, kb, kb, kb]), { bytes: 4096, err: null }, '0 counts nothing');
});

t.test('Expect: 100-continue is held per request', async (t) => {
  const a = {} as http.IncomingMessage;
  const b = {} as http.IncomingMessage;
  holdContinue(a);
  t.ok(awaitsContinue(a));
  t.notOk(awaitsContinue(b));
});

t.test('a stalled upload is bounded by the shorter of body_timeout and idle_timeout; 0 turns either off', async (t) => {
  t.equal(uploadIdleLimit(60_000, 5_000), 5_000);
  t.equal(uploadIdleLimit(1_000, 5_000), 1_000);
  t.equal(uploadIdleLimit(0, 5_000), 5_000);
  t.equal(uploadIdleLimit(1_000, 0), 1_000);
  t.equal(uploadIdleLimit(0, 0), 0);
});
