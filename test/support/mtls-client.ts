// A small HTTPS client for tests: one request with an optional client certificate, returning
// status, headers and body, or the error that ended the connection; and a bare mTLS connection for
// tests that write their own bytes.
import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';

export interface ClientCert {
  chainPem: string;
  keyPem: string;
}

export interface TestRequest {
  port: number;
  host?: string;
  servername?: string;
  /** Host header; default `servername`. */
  hostHeader?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  cert?: ClientCert;
  ca: string;
  agent?: https.Agent;
  /** Source address of the connection (any 127.x.x.x on loopback). */
  localAddress?: string;
}

export interface TestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: <T = any>() => T;
}

export function request(opts: TestRequest): Promise<TestResponse> {
  const servername = opts.servername ?? 'localhost';
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: opts.host ?? '127.0.0.1',
        port: opts.port,
        servername,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host: opts.hostHeader ?? servername, ...opts.headers },
        ca: opts.ca,
        cert: opts.cert?.chainPem,
        key: opts.cert?.keyPem,
        agent: opts.agent ?? false,
        localAddress: opts.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An mTLS connection to 127.0.0.1 (SNI localhost unless `servername` says otherwise), once its handshake is done. */
export async function connectMtls(opts: { port: number; ca: string; cert: ClientCert } & Omit<tls.ConnectionOptions, 'port' | 'ca' | 'cert' | 'key'>): Promise<TLSSocket> {
  const { cert, ...options } = opts;
  const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', ...options, cert: cert.chainPem, key: cert.keyPem });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  return socket;
}
