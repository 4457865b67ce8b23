// A request head as the request path builds it, in no protocol's text: what an HTTP/1.1 request
// line and header block or an HTTP/2 HEADERS frame are each written from, by their own codec.
// Only the HTTP/1.1 upstream connection writes HTTP/1.1 text.

export interface RequestHead {
  readonly method: string;
  /** How the client's request arrived: 'https' (mTLS) or 'http' (PERMISSIVE plaintext). */
  readonly scheme: 'https' | 'http';
  /**
   * The Host the client sent (HTTP/2's :authority), also in `headers` where it came; undefined
   * when it sent none: the upstream connection names its endpoint.
   */
  readonly authority: string | undefined;
  /** Origin-form path with query. */
  readonly path: string;
  /** End-to-end headers as a flat [name, value, …] list: no hop-by-hop ones, no CR/LF in any. */
  readonly headers: readonly string[];
  /** Whether `headers` hold Content-Length: a body without one is sent chunked (HTTP/1.1). */
  readonly hasLength: boolean;
}
