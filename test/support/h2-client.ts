// A node:http2 client for tests: one mTLS session to a gateway listener (ALPN h2), and requests on
// it that resolve with status, headers, body, trailers, or the RST_STREAM code that ended them.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Listener } from '../../gateway/config/types.js';
import type { ClientCert } from './mtls-client.js';

/** `listener` offering h2 first, as the YAML default does (the test configs offer http/1.1 only). */
export function offeringH2(listener: Listener): Listener {
  return { ...listener, tls: { ...listener.tls!, alpn: ['h2', 'http/1.1'] } };
}

export interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
  /** The RST_STREAM code that ended the stream (0: it ended normally). */
  rstCode: number;
  text: () => string;
  json: <T = any>() => T;
}

/** An HTTP/2 session to 127.0.0.1:`port` with SNI `servername` (default localhost), presenting `cert`. */
export async function h2Connect(opts: { port: number; ca: string; cert: ClientCert; servername?: string; settings?: http2.Settings }): Promise<ClientHttp2Session> {
  const servername = opts.servername ?? 'localhost';
  const session = http2.connect(`https://${servername}:${opts.port}`, {
    host: '127.0.0.1',
    servername,
    ca: opts.ca,
    cert: opts.cert.chainPem,
    key: opts.cert.keyPem,
    settings: opts.settings,
    // 127.0.0.1, whatever the URL's host says.
    lookup: (_host, options, callback) => (options.all ? callback(null, [{ address: '127.0.0.1', family: 4 }] as never) : callback(null, '127.0.0.1', 4)),
  } as http2.SecureClientSessionOptions);
  session.on('error', () => {}); // a test that expects the gateway to close the session asserts on 'close'
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  return session;
}

/** One request on `session` (GET / unless `headers` say otherwise), its body written whole. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders = {}, body?: Buffer | string, timeoutMs = 10_000): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', ...headers }, { endStream: body === undefined });
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), timeoutMs);
    let head: IncomingHttpHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', () => {
      clearTimeout(timer);
      if (head === undefined) {
        reject(Object.assign(new Error(`stream closed without a response (RST_STREAM ${stream.rstCode})`), { rstCode: stream.rstCode }));
        return;
      }
      const data = Buffer.concat(chunks);
      resolve({ status: Number(head[':status']), headers: head, body: data, trailers, rstCode: stream.rstCode ?? 0, text: () => data.toString('utf8'), json: () => JSON.parse(data.toString('utf8')) });
    });
    stream.on('error', () => {}); // 'close' tells
    if (body !== undefined) stream.end(body);
  });
}
