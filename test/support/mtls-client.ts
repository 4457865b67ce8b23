// A small HTTPS client for tests: one request with an optional client certificate, returning
// status, headers and body, or the error that ended the connection.
import https from 'node:https';

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
