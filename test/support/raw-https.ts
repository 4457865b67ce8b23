// Hand-made HTTP/1.1 over real TLS for tests where the exact bytes matter (header case, duplicates,
// targets node:https would rewrite): one or more requests written as given on one mTLS connection,
// responses read back with their headers as sent, in order, names unchanged.
import tls from 'node:tls';
import type { ClientCert } from './mtls-client.js';

export interface RawResponse {
  status: number;
  /** [name, value] as received, in order. */
  headers: [string, string][];
  body: string;
  header(name: string): string | undefined;
  json: <T = any>() => T;
}

export interface RawConnectionOptions {
  port: number;
  ca: string;
  cert: ClientCert;
  /** SNI; undefined sends none (as a client connecting by IP address does). */
  servername: string | undefined;
}

/** Sends `requests` (each a whole request head, CRLF line ends, with its empty line) on one connection. */
export async function rawRequestsOnOneConnection(options: RawConnectionOptions, ...requests: string[]): Promise<RawResponse[]> {
  const socket = connect(options);
  const responses: RawResponse[] = [];
  let buffer = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw exchange timed out with ${responses.length} of ${requests.length} responses`));
    }, 10_000);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(responses);
    };
    socket.once('secureConnect', () => socket.write(requests.join('')));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let parsed = parseResponse(buffer); parsed !== undefined; parsed = parseResponse(buffer)) {
        responses.push(parsed.response);
        buffer = buffer.subarray(parsed.length);
        if (responses.length === requests.length) return finish();
      }
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(responses.length === requests.length ? undefined : new Error(`connection closed after ${responses.length} of ${requests.length} responses`)));
  });
}

/**
 * One mTLS connection kept open between requests (keep-alive): each `send` writes a request and
 * resolves with its response; `closed` resolves when the gateway (or anyone) ends the connection.
 */
export interface Conversation {
  send(request: string): Promise<RawResponse>;
  readonly closed: Promise<void>;
  destroy(): void;
}

export async function openConversation(options: RawConnectionOptions): Promise<Conversation> {
  const socket = connect(options);
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  socket.on('error', () => {}); // a reset shows as 'close', which the test awaits
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let buffer = Buffer.alloc(0);
  let waiting: { resolve(r: RawResponse): void; reject(e: Error): void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    const parsed = parseResponse(buffer);
    if (parsed === undefined || waiting === undefined) return;
    buffer = buffer.subarray(parsed.length);
    const w = waiting;
    waiting = undefined;
    w.resolve(parsed.response);
  });
  void closed.then(() => waiting?.reject(new Error('connection closed before the response')));
  return {
    send: (request) =>
      new Promise((resolve, reject) => {
        if (socket.destroyed) return reject(new Error('connection closed before the response'));
        waiting = { resolve, reject };
        socket.write(request);
      }),
    closed,
    destroy: () => socket.destroy(),
  };
}

function connect(options: RawConnectionOptions): tls.TLSSocket {
  return tls.connect({
    host: '127.0.0.1',
    port: options.port,
    servername: options.servername,
    ca: options.ca,
    cert: options.cert.chainPem,
    key: options.cert.keyPem,
    checkServerIdentity: () => undefined, // the tests' concern is the gateway's HTTP, not its name
  });
}

/** One request on its own connection. */
export async function rawRequest(options: RawConnectionOptions, request: string): Promise<RawResponse> {
  return (await rawRequestsOnOneConnection(options, request))[0]!;
}

/** A complete response at the start of `data` (Content-Length or chunked), with its length in bytes. */
function parseResponse(data: Buffer): { response: RawResponse; length: number } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  const find = (name: string) => headers.find(([n]) => n.toLowerCase() === name)?.[1];
  let offset = end + 4;
  let body: Buffer;
  if (find('transfer-encoding')?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = data.indexOf('\r\n', offset);
      if (lineEnd === -1) return undefined;
      const size = parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      offset = lineEnd + 2 + size + 2;
      if (size === 0) break;
      parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    }
    body = Buffer.concat(parts);
  } else {
    const length = Number(find('content-length') ?? 0);
    if (data.length < offset + length) return undefined;
    body = data.subarray(offset, offset + length);
    offset += length;
  }
  const text = body.toString('utf8');
  const response: RawResponse = {
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: text,
    header: (name) => find(name.toLowerCase()),
    json: () => JSON.parse(text),
  };
  return { response, length: offset };
}
