// The response to one downstream request, as the request path writes it whatever the protocol:
// a head as values (the session writes it in its own framing), body chunks with backpressure, and
// trailers at the end. HTTP/1.1 (http1/client-response.ts) and HTTP/2 streams implement it.
export interface DownstreamResponse {
  /** The head has been set (writeHead); a failure from now on can only cut the response. */
  readonly headersSent: boolean;
  /** The client is gone: nothing written now reaches anyone. */
  readonly closed: boolean;
  /** The request was gRPC: the gateway's own refusals are answered as gRPC statuses (error-response.ts). */
  readonly grpc: boolean;
  /** Sets the head (flat [name, value, …] list, no hop-by-hop headers); it may leave with the first body bytes. */
  writeHead(status: number, statusText: string, headers: readonly string[]): void;
  /** Sends a head set by writeHead now, rather than with the first body bytes. */
  flushHead(): void;
  /** Writes body bytes; false when the client's buffer is full (wait for onDrain). */
  write(chunk: Buffer): boolean;
  /** Ends the response, with `chunk` as its last body bytes and `trailers` (flat list) where the protocol carries them. */
  end(chunk?: Buffer, trailers?: readonly string[]): void;
  /** Cuts the response: the only honest signal left once it has started. */
  destroy(err?: Error): void;
  onDrain(listener: () => void): void;
  /** Called once if the response ends before its answer did: the client went away, or the gateway ended it (`endedBy`). */
  onClose(listener: (endedBy?: EndedByGateway) => void): void;
}

/** Why the gateway itself ended a response before its answer did (a gRPC deadline), and the status it answered with if nothing had left yet. */
export interface EndedByGateway {
  readonly reason: string;
  readonly status?: number;
}
