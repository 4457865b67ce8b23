// An mTLS upstream (node:tls, real handshakes) whose answers a test writes itself, byte for byte:
// each request is handed to `answer` with its socket as soon as its head is in, so a test can hold
// a response, answer before the body, stall a body or send headers no well-behaved server would.
// It reads request bodies (Content-Length or chunked) to find where the next request starts, keeps
// every byte each connection received, so that "nothing reached the upstream" is checked on the
// wire, and counts the TCP connections it accepts, which is how a test observes the gateway's pool.
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';

export interface ScriptedRequest {
  /** The request line and headers, without the final empty line. */
  readonly head: string;
  readonly method: string;
  /** The request target (path and query). */
  readonly path: string;
  /** The body's length in bytes (decoded, if chunked), once all of it has arrived. */
  readonly bodyLength: Promise<number>;
  readonly socket: TLSSocket;
}

/** What one upstream connection received. */
export interface Transcript {
  /** Every byte received so far (latin1). */
  data: string;
  closed: boolean;
}

export interface ScriptedTlsUpstream {
  readonly port: number;
  readonly requests: ScriptedRequest[];
  /** TCP connections accepted, open now, and the most open at any one time. */
  readonly connections: { accepted: number; open: number; maxOpen: number };
  /** One per TLS connection, in the order they were established. */
  readonly transcripts: Transcript[];
  /** Everything every connection has received so far, one connection after the other. */
  readonly received: string;
  close(): Promise<void>;
}

export async function startScriptedTlsUpstream(
  identity: { chainPem: string; keyPem: string },
  caPem: string,
  answer: (request: ScriptedRequest) => void,
): Promise<ScriptedTlsUpstream> {
  const requests: ScriptedRequest[] = [];
  const transcripts: Transcript[] = [];
  const connections = { accepted: 0, open: 0, maxOpen: 0 };
  const sockets = new Set<TLSSocket>();
  const server = tls.createServer({ cert: identity.chainPem, key: identity.keyPem, ca: caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (socket) => {
    sockets.add(socket);
    const transcript: Transcript = { data: '', closed: false };
    transcripts.push(transcript);
    socket.on('close', () => {
      sockets.delete(socket);
      transcript.closed = true;
    });
    socket.on('error', () => {});
    /** Where the request being read starts, and its body once its head has been handed out. */
    let offset = 0;
    let current: { bodyStart: number; chunked: boolean; contentLength: number; done: (length: number) => void } | undefined;
    socket.on('data', (chunk: Buffer) => {
      transcript.data += chunk.toString('latin1');
      const data = transcript.data;
      for (;;) {
        if (current === undefined) {
          const headEnd = data.indexOf('\r\n\r\n', offset);
          if (headEnd === -1) return;
          const head = data.slice(offset, headEnd);
          const lines = head.split('\r\n');
          const [method = '', path = ''] = lines[0]!.split(' ');
          const header = (name: string) => lines.find((line) => line.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
          let done!: (length: number) => void;
          const bodyLength = new Promise<number>((resolve) => (done = resolve));
          current = { bodyStart: headEnd + 4, chunked: header('transfer-encoding') === 'chunked', contentLength: Number(header('content-length') ?? 0), done };
          const request = { head, method, path, bodyLength, socket };
          requests.push(request);
          answer(request);
        }
        const body = bodyEnd(data, current);
        if (body === undefined) return;
        current.done(body.length);
        offset = body.end;
        current = undefined;
      }
    });
  });
  // Counted at TCP accept, before the handshake: every connection the gateway opened.
  server.on('connection', (raw) => {
    connections.accepted++;
    connections.maxOpen = Math.max(connections.maxOpen, ++connections.open);
    raw.once('close', () => connections.open--);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    connections,
    transcripts,
    get received() {
      return transcripts.map((t) => t.data).join('');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The length of a body that starts at `bodyStart` and where it ends, once all of it is in `data`. */
function bodyEnd(data: string, body: { bodyStart: number; chunked: boolean; contentLength: number }): { length: number; end: number } | undefined {
  if (!body.chunked) return data.length < body.bodyStart + body.contentLength ? undefined : { length: body.contentLength, end: body.bodyStart + body.contentLength };
  let length = 0;
  for (let pos = body.bodyStart; ; ) {
    const lineEnd = data.indexOf('\r\n', pos);
    if (lineEnd === -1) return undefined;
    const size = parseInt(data.slice(pos, lineEnd), 16);
    if (Number.isNaN(size)) return undefined; // not a chunk size: the body never ends
    if (data.length < lineEnd + 2 + size + 2) return undefined;
    pos = lineEnd + 2 + size + 2;
    if (size === 0) return { length, end: pos };
    length += size;
  }
}

/** A complete response with a Content-Length body. */
export function okResponse(body: string, extraHeaders = ''): string {
  return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`;
}
