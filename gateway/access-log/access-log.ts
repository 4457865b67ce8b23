// The access log of a running gateway: which requests are logged (access_log.sample), and the
// record each logged one fills as it goes — started when the request arrives, finished when its
// answer ends (or is cut) — written as one line (access-line.ts) through the batching writer.
import { performance } from 'node:perf_hooks';
import type { AccessLogConfig } from '../config/types.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamRequest } from '../session/downstream-request.js';
import { accessLine } from './access-line.js';
import { AccessLogWriter } from './access-log-writer.js';

export class AccessLog {
  readonly writer: AccessLogWriter;

  constructor(readonly config: AccessLogConfig) {
    this.writer = new AccessLogWriter(config.path);
  }

  /** The record for a request, or undefined when sampling leaves it out. */
  start(listener: string, req: DownstreamRequest, path: string, requestId: string): RequestLog | undefined {
    const sample = this.config.sample;
    if (sample < 1 && Math.random() >= sample) return undefined;
    return new RequestLog(this.writer, listener, req, path, requestId);
  }

  close(): Promise<void> {
    return this.writer.close();
  }
}

/** What one logged request did; fields set by the stages that know them. */
export class RequestLog {
  readonly #started = performance.now();
  route: string | undefined;
  upstream: string | undefined;
  endpoint: string | undefined;
  upstreamMs: number | undefined;
  attempts: number | undefined;
  #done = false;

  constructor(
    private readonly writer: AccessLogWriter,
    private readonly listener: string,
    private readonly req: DownstreamRequest,
    private readonly path: string,
    private readonly requestId: string,
  ) {}

  /** The answer ended (or was cut): one line, once. */
  finish(status: number, reason: string | undefined, bytesOut: number): void {
    if (this.#done) return;
    this.#done = true;
    const { req } = this;
    const conn = req.connection;
    const tls = tlsFacts(conn);
    this.writer.write(
      accessLine({
        kind: 'request',
        listener: this.listener,
        route: this.route,
        method: req.method,
        path: this.path,
        protocol: conn.alpn === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
        status,
        reason,
        durationMs: performance.now() - this.#started,
        upstream: this.upstream,
        endpoint: this.endpoint,
        upstreamMs: this.upstreamMs,
        attempts: this.attempts,
        bytesIn: req.body?.received ?? 0,
        bytesOut,
        identity: conn.identity?.spiffeId ?? conn.identity?.subject,
        tlsVersion: tls?.version,
        resumed: tls?.resumed,
        requestId: this.requestId,
        remote: req.remoteAddress,
      }),
    );
  }
}

/** The connection's TLS version and resumption, read once per connection and kept on its context. */
function tlsFacts(conn: ConnectionContext): { version: string; resumed: boolean } | undefined {
  if (conn.tls !== undefined) return conn.tls;
  const socket = conn.tlsSocket;
  if (socket === undefined) return undefined;
  conn.tls = { version: socket.getProtocol() ?? 'unknown', resumed: socket.isSessionReused() };
  return conn.tls;
}
