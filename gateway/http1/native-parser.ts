// Node's native HTTP/1 parser (llhttp), the one node:http itself uses, driven directly: both the
// client side (requests) and the upstream side (responses) parse with it and get flat header lists
// instead of objects. `_http_common` is Node's public legacy module that exposes it.
import { createRequire } from 'node:module';

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  remove(): void;
  /**
   * Deletes the native parser. Until then it is held by a strong handle, and with it everything its
   * callbacks reach (the connection, its socket and TLS state). Not `free()`: that only reports the
   * parser destroyed, for node:http's pool of parsers kept for reuse.
   */
  close(): void;
  [callback: number]: unknown;
}

/** What execute() returns instead of a byte count when the input is not valid HTTP/1. */
export interface ParseError extends Error {
  readonly code?: string;
  readonly reason?: string;
  readonly bytesParsed?: number;
}

interface NativeParserClass {
  new (): NativeParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: NativeParserClass; methods: readonly string[] };

const HTTPParser = common.HTTPParser;
/** Request methods by the index the parser reports. */
export const METHODS = common.methods;

export interface ParserCallbacks {
  onMessageBegin?: () => void;
  /** Header pairs (and URL piece) flushed before the head ends: more than 32 headers, or split reads. */
  onHeaders: (headers: string[], url: string) => void;
  onHeadersComplete: (...args: never[]) => number;
  onBody: (chunk: Buffer) => void;
  /** Left out, the parser calls nothing at a message's end (see watchMessageComplete). */
  onMessageComplete?: () => void;
}

/** A strict (no lenient flags) parser of requests or responses, default header size limit. */
export function createParser(kind: 'request' | 'response', resource: object, callbacks: ParserCallbacks): NativeParser {
  const parser = new HTTPParser();
  parser.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, resource, 0, HTTPParser.kLenientNone);
  // Every callback slot is an own property, set or not: the parser looks each one up at every
  // message, and a missing one is searched for along the prototype chain.
  parser[HTTPParser.kOnMessageBegin] = callbacks.onMessageBegin;
  parser[HTTPParser.kOnHeaders] = callbacks.onHeaders;
  parser[HTTPParser.kOnHeadersComplete] = callbacks.onHeadersComplete;
  parser[HTTPParser.kOnBody] = callbacks.onBody;
  parser[HTTPParser.kOnMessageComplete] = callbacks.onMessageComplete;
  return parser;
}

/**
 * Sets (or, with undefined, clears) the callback for the end of the message being parsed. Every
 * callback is a call from C++ into JavaScript; a request without a body needs none at its end.
 */
export function watchMessageComplete(parser: NativeParser, callback: (() => void) | undefined): void {
  parser[HTTPParser.kOnMessageComplete] = callback;
}

/** Sets (or clears) the callback for the beginning of the next message, as watchMessageComplete. */
export function watchMessageBegin(parser: NativeParser, callback: (() => void) | undefined): void {
  parser[HTTPParser.kOnMessageBegin] = callback;
}
