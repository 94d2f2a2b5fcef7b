/**
 * @module A real gRPC server and client (@grpc/grpc-js) for the tests, on test/fixtures/grpc/echo.proto: one
 * method of each kind (unary, server streaming, client streaming, bidirectional), over h2c, TLS, or a unix socket.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { ROOT, type Tap } from './daemon.js';

export { grpc };

export const PROTO = path.join(ROOT, 'test/fixtures/grpc/echo.proto');

export interface Msg {
  text: string;
  n: number;
  delay: number;
}

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

let cached: Ctor | null = null;

/** The Echo client class (the proto is loaded once per process). */
export function echoClientClass(): Ctor {
  if (cached === null) {
    const def = loader.loadSync(PROTO, { defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { baton: { test: { Echo: Ctor & { service: grpc.ServiceDefinition } } } };
    cached = pkg.baton.test.Echo;
  }
  return cached;
}

export interface EchoServer {
  readonly server: grpc.Server;
  /** `127.0.0.1:PORT`, or `unix:PATH`. */
  readonly address: string;
  /** Calls seen, by method. */
  readonly calls: Record<string, number>;
}

/**
 * The Echo service. Unary answers `text` (after `n` ms when n > 0; `text` "fail:CODE" answers that status);
 * ServerStream sends `n` messages `delay` ms apart; ClientStream counts; Bidi echoes.
 */
export async function startEchoServer(t: Tap, opts: { tls?: { cert: string; key: string; ca?: string; requireClientCert?: boolean }; socket?: string } = {}): Promise<EchoServer> {
  const Echo = echoClientClass() as unknown as { service: grpc.ServiceDefinition };
  const server = new grpc.Server();
  const calls: Record<string, number> = {};
  const count = (m: string) => { calls[m] = (calls[m] ?? 0) + 1; };
  server.addService(Echo.service, {
    Unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      count('Unary');
      const m = /^fail:(\d+)$/.exec(call.request.text);
      if (m !== null) return cb({ code: Number(m[1]), details: 'asked to fail' });
      const answer = () => cb(null, { text: call.request.text, n: call.request.n, delay: 0 });
      if (call.request.n > 0) {
        const timer = setTimeout(answer, call.request.n);
        call.on('cancelled', () => {
          clearTimeout(timer);
          count('cancelled');
        });
      } else answer();
    },
    ServerStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      count('ServerStream');
      let i = 0;
      const next = () => {
        if (call.cancelled) return;
        if (i >= call.request.n) return call.end();
        call.write({ text: `${call.request.text}-${i++}`, n: i, delay: 0 });
        setTimeout(next, call.request.delay);
      };
      next();
    },
    ClientStream: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      count('ClientStream');
      let n = 0;
      let bytes = 0;
      call.on('data', (m: Msg) => { n++; bytes += m.text.length; });
      call.on('end', () => cb(null, { text: `bytes=${bytes}`, n, delay: 0 }));
    },
    Bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      count('Bidi');
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, n: m.n, delay: 0 }));
      call.on('end', () => call.end());
    },
  });
  const creds = opts.tls
    ? grpc.ServerCredentials.createSsl(opts.tls.ca ? Buffer.from(opts.tls.ca) : null, [{ cert_chain: Buffer.from(opts.tls.cert), private_key: Buffer.from(opts.tls.key) }], opts.tls.requireClientCert === true)
    : grpc.ServerCredentials.createInsecure();
  const bind = opts.socket !== undefined ? `unix:${opts.socket}` : '127.0.0.1:0';
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(bind, creds, (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => new Promise<void>((resolve) => {
    server.forceShutdown();
    if (opts.socket !== undefined) fs.rmSync(opts.socket, { force: true });
    resolve();
  }));
  return { server, address: opts.socket !== undefined ? `unix:${opts.socket}` : `127.0.0.1:${port}`, calls };
}

/** A client of the Echo service through `address` (baton's listener): h2c, or TLS trusting `ca` for `serverName`. */
export function echoClient(t: Tap, address: string, tls?: { ca: string; serverName: string }): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const Echo = echoClientClass();
  const creds = tls ? grpc.credentials.createSsl(Buffer.from(tls.ca)) : grpc.credentials.createInsecure();
  const options: grpc.ClientOptions = tls ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {};
  const client = new Echo(address, creds, options);
  t.teardown(() => client.close());
  return client as grpc.Client & Record<string, (...args: unknown[]) => unknown>;
}

/** One unary call: the answer, or the error's code and details. */
export function unary(client: grpc.Client & Record<string, (...args: unknown[]) => unknown>, msg: Partial<Msg>, deadlineMs = 15_000): Promise<{ ok: true; msg: Msg } | { ok: false; code: number; details: string }> {
  return new Promise((resolve) => {
    client.Unary!({ text: '', n: 0, delay: 0, ...msg }, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Msg) => {
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, msg: res });
    });
  });
}
