// A TLS server (mTLS, ALPN h2) whose connections are served by the gateway's HTTP/2 session
// (gateway/http2/client-session.ts on the native engine) with a request handler the test gives:
// for tests of the session's parts (StreamResponse, StreamBody) without the request path.
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Http2ClientSession } from '../../gateway/http2/client-session.js';
import { h2Engine } from '../../gateway/http2/native/h2-engine.js';
import { engineSettings, type Http2SessionOptions } from '../../gateway/http2/session-options.js';
import type { RequestHandler } from '../../gateway/session/downstream-request.js';
import { id, TestPki, type WrittenCert } from './test-pki.js';

export interface H2SessionServer {
  readonly port: number;
  readonly pki: TestPki;
  readonly client: WrittenCert;
  close(): Promise<void>;
}

export async function startH2SessionServer(handler: RequestHandler): Promise<H2SessionServer> {
  if (h2Engine === undefined) throw new Error('the native HTTP/2 engine is built by npm run build (needs libnghttp2-dev)');
  const pki = await TestPki.create();
  const cert = await pki.issue('server', { spiffeId: id('server'), dnsNames: ['localhost'], usage: 'server' });
  const client = await pki.issue('client', { spiffeId: id('client'), usage: 'client' });
  const options: Http2SessionOptions = {
    listener: 'test',
    handler,
    headersMs: 0,
    idleMs: 60_000,
    bodyMs: 0,
    settings: engineSettings({ maxConcurrentStreams: 100, maxHeaderBytes: 16 * 1024 }),
    maxHeaderBytes: 16 * 1024,
    onRefused: () => {},
    onClosed: () => {},
  };
  const server = tls.createServer({ cert: cert.chainPem, key: cert.keyPem, ca: pki.ca.rootPem, requestCert: true, ALPNProtocols: ['h2'] }, (socket) => {
    new Http2ClientSession(socket, { identity: undefined, by: undefined, sni: undefined, alpn: 'h2', mtls: true }, options, h2Engine!);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    pki,
    client,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      pki.cleanup();
    },
  };
}
