// A request head as HTTP/2 request headers (RFC 9113 §8.3): the pseudo-headers, then the header
// list without what HTTP/2 forbids (connection-specific headers, §8.2.2) or carries elsewhere
// (Host: :authority). A gRPC request carries `te: trailers`, which gRPC requires of every request
// (and the request path drops as hop-by-hop). Names go lowercase, as HTTP/2 requires (§8.2.1):
// an HTTP/1.1 client's keep their case, and the engine refuses a name that is not a lowercase token.
import { HeaderNameTable } from '../message/header-name-table.js';
import type { RequestHead } from '../message/request-head.js';

const enum Kind {
  Dropped = 1,
  Te,
  ContentType,
}

const NAMES = new HeaderNameTable([
  ...['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host'].map((name) => ({ name, kind: Kind.Dropped })),
  { name: 'te', kind: Kind.Te },
  { name: 'content-type', kind: Kind.ContentType },
]);

/**
 * The headers of `head` sent to an upstream as `scheme`, naming `defaultAuthority` when the
 * client sent no Host; TE only as `trailers`, the one value HTTP/2 allows.
 */
export function h2RequestHeaders(head: RequestHead, scheme: 'https' | 'http', defaultAuthority: string): string[] {
  const list = [':method', head.method, ':scheme', scheme, ':authority', head.authority ?? defaultAuthority, ':path', head.path];
  const headers = head.headers;
  let grpc = false;
  let te = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    const kind = NAMES.kindOf(name);
    if (kind === Kind.Dropped) continue;
    if (kind === Kind.Te) {
      if (te || value.trim().toLowerCase() !== 'trailers') continue;
      te = true;
    } else if (kind === Kind.ContentType) {
      grpc = value.startsWith('application/grpc');
    }
    list.push(name.toLowerCase(), value);
  }
  if (grpc && !te) list.push('te', 'trailers');
  return list;
}
