// The access log of a running gateway: which requests are logged (access_log.sample), and the
// record each logged one fills as it goes — started when the request arrives, finished when its
// answer ends (or is cut) — written as one line (access-line.ts) through the batching writer.
import { performance } from 'node:perf_hooks';
import type { AccessLogConfig } from '../config/types.js';
import type { DownstreamRequest } from '../session/downstream-request.js';
import { type AccessEntry, accessLineBound, connectionFields, writeAccessLine } from './access-line.js';
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
    return new RequestLog(this, listener, req, path, requestId);
  }

  /** One line for `e`, unless the destination is behind (then it is dropped and counted). */
  write(e: AccessEntry): void {
    const out = this.writer.line(accessLineBound(e));
    if (out === undefined) return;
    writeAccessLine(out, e);
    this.writer.commit();
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
    private readonly log: AccessLog,
    private readonly listener: string,
    private readonly req: DownstreamRequest,
    private readonly path: string,
    /** The request's id; the client's own where the route trusts it (set once the route is known). */
    public requestId: string,
  ) {}

  /** The answer ended (or was cut): one line, once. */
  finish(status: number, reason: string | undefined, bytesOut: number): void {
    if (this.#done) return;
    this.#done = true;
    const { req } = this;
    this.log.write({
      kind: 'request',
      listener: this.listener,
      route: this.route,
      method: req.method,
      path: this.path,
      status,
      reason,
      durationMs: performance.now() - this.#started,
      upstream: this.upstream,
      endpoint: this.endpoint,
      upstreamMs: this.upstreamMs,
      attempts: this.attempts,
      bytesIn: req.body?.received ?? 0,
      bytesOut,
      requestId: this.requestId,
      connection: requestConnectionFields(req),
    });
  }
}

/** A TLS connection's own fields, rendered for its first logged request and kept on its context
 * (plaintext connections share one frozen context: theirs are rendered each time). */
function requestConnectionFields(req: DownstreamRequest): string {
  const conn = req.connection;
  if (conn.logFields !== undefined) return conn.logFields;
  const socket = conn.tlsSocket;
  const fields = connectionFields({
    protocol: conn.alpn === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
    identity: conn.identity?.spiffeId ?? conn.identity?.subject,
    tlsVersion: socket === undefined ? undefined : (socket.getProtocol() ?? 'unknown'),
    resumed: socket?.isSessionReused(),
    remote: req.remoteAddress,
  });
  if (socket !== undefined) conn.logFields = fields;
  return fields;
}
