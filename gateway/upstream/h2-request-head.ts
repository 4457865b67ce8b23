// A request head as HTTP/2 request headers (RFC 9113 §8.3): the pseudo-headers, then the header
// list without what HTTP/2 forbids (connection-specific headers, §8.2.2) or carries elsewhere
// (Host: :authority). A gRPC request carries `te: trailers`, which gRPC requires of every request
// (and the request path drops as hop-by-hop). node:http2 lowercases the names as it writes them.
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

/** Whether node:http2 takes a raw [name, value, …] list (Node 22.17, 24); older ones take an object. */
const RAW_LISTS = ((major, minor) => major > 22 || (major === 22 && minor >= 17))(...(process.versions.node.split('.').map(Number) as [number, number]));

/**
 * The headers of `head` sent to an upstream as `scheme`, naming `defaultAuthority` when the
 * client sent no Host; TE only as `trailers`, the one value HTTP/2 allows.
 */
export function h2RequestHeaders(head: RequestHead, scheme: 'https' | 'http', defaultAuthority: string): string[] | Record<string, string | string[]> {
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
    list.push(name, value);
  }
  if (grpc && !te) list.push('te', 'trailers');
  return RAW_LISTS ? list : asObject(list);
}

/** The list as the header object older node:http2 takes: a repeated name gets an array. */
function asObject(list: readonly string[]): Record<string, string | string[]> {
  const object: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    const had = object[name];
    object[name] = had === undefined ? value : typeof had === 'string' ? [had, value] : [...had, value];
  }
  return object;
}
