// Incremental ClientHello reader for the front door: feed it the first bytes of a connection as
// they arrive and it says whether they are a TLS ClientHello (with SNI, ALPN and supported
// versions), not TLS at all, too large, malformed, or still incomplete. It reassembles a
// handshake message split across TCP segments and across TLS records, keeps at most `maxBytes`
// of the message, never throws on input, and only decodes the three extensions routing needs.

export type MalformedDetail =
  | 'record_type' // a later record is not a handshake record
  | 'record_version'
  | 'record_length' // zero or larger than the TLS limit
  | 'handshake_type' // the first handshake message is not a ClientHello
  | 'hello_length' // declared length too short for a ClientHello
  | 'hello_body' // fixed fields run past the message
  | 'extensions_length'
  | 'extension_length'
  | 'duplicate_extension'
  | 'trailing_bytes' // a record carries more than the ClientHello
  | 'server_name'
  | 'sni_value' // host_name with bytes a DNS name cannot hold
  | 'alpn'
  | 'supported_versions';

export interface ClientHello {
  readonly kind: 'hello';
  /** host_name from server_name: lowercase, without a trailing dot; absent when not sent. */
  readonly sni?: string;
  /** ALPN protocol names the client offered, in its order (bytes as latin1). */
  readonly alpn: readonly string[];
  /** supported_versions (TLS 1.3 clients); empty when absent. */
  readonly versions: readonly number[];
  readonly legacyVersion: number;
  /** Bytes of input up to the end of the ClientHello, record headers included. */
  readonly bytes: number;
}

export type HelloOutcome =
  | ClientHello
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'not_tls' }
  | { readonly kind: 'too_large' }
  | { readonly kind: 'malformed'; readonly detail: MalformedDetail };

export type HelloOutcomeKind = HelloOutcome['kind'];

export const DEFAULT_MAX_HELLO_BYTES = 16 * 1024;

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
/** RFC 8446 5.2: no record is longer than 2^14 + 2048 bytes. */
const MAX_RECORD_LENGTH = 16384 + 2048;
/** version(2) random(32) session_id(1) cipher_suites(2+2) compression(1+1). */
const MIN_HELLO_BODY = 41;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

const INCOMPLETE = Object.freeze({ kind: 'incomplete' as const });
const NOT_TLS = Object.freeze({ kind: 'not_tls' as const });
const TOO_LARGE = Object.freeze({ kind: 'too_large' as const });
const MALFORMED = new Map<MalformedDetail, HelloOutcome>();
function malformed(detail: MalformedDetail): HelloOutcome {
  let outcome = MALFORMED.get(detail);
  if (outcome === undefined) MALFORMED.set(detail, (outcome = Object.freeze({ kind: 'malformed' as const, detail })));
  return outcome;
}
const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_NUMBERS: readonly number[] = Object.freeze([]);

/**
 * Reads one connection's ClientHello. `push` each chunk received; once the answer is anything
 * but `incomplete` it is final and later pushes return it again without looking at the bytes.
 * Bound: the input up to the end of the ClientHello, record headers included, is at most
 * `maxBytes`, else `too_large`. Memory: a few numbers and, only when the message is split over
 * records or segments, one buffer of its declared length (checked against the bound first).
 */
export class ClientHelloReader {
  readonly maxBytes: number;
  #outcome: HelloOutcome = INCOMPLETE;
  /** Input bytes looked at so far. */
  #consumed = 0;
  // Record and handshake headers as numbers while they arrive (no buffer per connection).
  #recordHeaderFill = 0;
  #recordType = 0;
  #recordMajor = 0;
  #recordLength = 0;
  #recordRemaining = 0;
  #records = 0;
  #messageHeaderFill = 0;
  #messageType = 0;
  #messageLength = 0;
  #message: Buffer | undefined;
  #messageFill = 0;

  constructor(maxBytes = DEFAULT_MAX_HELLO_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 64) throw new RangeError(`ClientHelloReader: maxBytes must be an integer >= 64, got ${maxBytes}`);
    this.maxBytes = maxBytes;
  }

  get outcome(): HelloOutcome {
    return this.#outcome;
  }

  push(chunk: Uint8Array): HelloOutcome {
    if (this.#outcome !== INCOMPLETE) return this.#outcome;
    this.#outcome = this.#read(chunk);
    return this.#outcome;
  }

  #read(chunk: Uint8Array): HelloOutcome {
    let at = 0;
    while (at < chunk.length) {
      if (this.#consumed >= this.maxBytes) return TOO_LARGE; // more is needed than the bound allows
      if (this.#recordRemaining > 0) {
        const take = Math.min(this.#recordRemaining, chunk.length - at);
        const start = at;
        at += take;
        this.#recordRemaining -= take;
        this.#consumed += take;
        const outcome = this.#fragment(chunk, start, at);
        if (outcome !== INCOMPLETE) return outcome;
        continue;
      }
      // A record header, possibly split across chunks.
      if (this.#consumed === 0 && chunk[at] !== CONTENT_HANDSHAKE) return NOT_TLS;
      while (this.#recordHeaderFill < 5 && at < chunk.length) {
        const byte = chunk[at++]!;
        this.#consumed++;
        switch (this.#recordHeaderFill++) {
          case 0:
            this.#recordType = byte;
            break;
          case 1:
            this.#recordMajor = byte;
            break;
          case 3:
            this.#recordLength = byte << 8;
            break;
          case 4:
            this.#recordLength |= byte;
            break;
        }
      }
      if (this.#recordHeaderFill < 5) {
        // 0x16 then anything but major version 3 is some other protocol, not a broken TLS one.
        if (this.#records === 0 && this.#recordHeaderFill >= 2 && this.#recordMajor !== 3) return NOT_TLS;
        break;
      }
      this.#recordHeaderFill = 0;
      if (this.#recordMajor !== 3) return this.#records === 0 ? NOT_TLS : malformed('record_version');
      if (this.#recordType !== CONTENT_HANDSHAKE) return malformed('record_type');
      const length = this.#recordLength;
      if (length === 0 || length > MAX_RECORD_LENGTH) return malformed('record_length');
      this.#recordRemaining = length;
      this.#records++;
    }
    return this.#consumed >= this.maxBytes ? TOO_LARGE : INCOMPLETE;
  }

  /** Handshake bytes [start, end) of `chunk`, the part of the current record in it. */
  #fragment(chunk: Uint8Array, start: number, end: number): HelloOutcome {
    let at = start;
    if (this.#messageHeaderFill < 4) {
      while (this.#messageHeaderFill < 4 && at < end) {
        const byte = chunk[at++]!;
        if (this.#messageHeaderFill++ === 0) this.#messageType = byte;
        else this.#messageLength = (this.#messageLength << 8) | byte;
      }
      if (this.#messageHeaderFill < 4) return INCOMPLETE;
      if (this.#messageType !== HANDSHAKE_CLIENT_HELLO) return malformed('handshake_type');
      const length = this.#messageLength;
      // Header of the record and of the message come on top of the body.
      if (length + 9 > this.maxBytes) return TOO_LARGE;
      if (length < MIN_HELLO_BODY) return malformed('hello_length');
      // Fast path: the whole body is in this fragment, so parse it where it lies, without a copy.
      if (end - at >= length) return this.#finish(chunk, at, at + length, end - at - length);
      this.#message = Buffer.allocUnsafe(length);
      this.#messageFill = 0;
    }
    const message = this.#message!;
    const take = Math.min(message.length - this.#messageFill, end - at);
    message.set(chunk.subarray(at, at + take), this.#messageFill);
    this.#messageFill += take;
    if (this.#messageFill < message.length) return INCOMPLETE;
    return this.#finish(message, 0, message.length, end - at - take);
  }

  /** The body is complete at [start, end) of `bytes`; `leftover` bytes of the fragment follow it. */
  #finish(bytes: Uint8Array, start: number, end: number, leftover: number): HelloOutcome {
    this.#message = undefined;
    // More of the record after the message would be a second handshake message in the
    // ClientHello's flight, which TLS does not allow.
    if (leftover > 0 || this.#recordRemaining > 0) return malformed('trailing_bytes');
    if (this.#consumed > this.maxBytes) return TOO_LARGE;
    return parseClientHelloBody(bytes, start, end, this.#consumed);
  }
}

/**
 * Parses a complete ClientHello body (after the 4-byte handshake header) at [start, end) of
 * `b`. Only server_name, ALPN and supported_versions are decoded; other extensions are skipped
 * after their length is checked.
 */
export function parseClientHelloBody(b: Uint8Array, start: number, end: number, bytes: number): HelloOutcome {
  let p = start;
  const legacyVersion = (b[p]! << 8) | b[p + 1]!;
  p += 2 + 32;
  const sessionIdLength = b[p]!;
  if (sessionIdLength > 32) return malformed('hello_body');
  p += 1 + sessionIdLength;
  if (p + 2 > end) return malformed('hello_body');
  const suitesLength = (b[p]! << 8) | b[p + 1]!;
  if (suitesLength < 2 || suitesLength % 2 !== 0) return malformed('hello_body');
  p += 2 + suitesLength;
  if (p + 1 > end) return malformed('hello_body');
  const compressionLength = b[p]!;
  if (compressionLength < 1) return malformed('hello_body');
  p += 1 + compressionLength;
  if (p > end) return malformed('hello_body');

  let sni: string | undefined;
  let alpn = NO_STRINGS;
  let versions = NO_NUMBERS;
  let seen = 0; // bit per decoded extension, to refuse duplicates
  if (p < end) {
    // Extensions are optional before TLS 1.3, but when present they fill the message exactly.
    if (p + 2 > end) return malformed('extensions_length');
    const extensionsLength = (b[p]! << 8) | b[p + 1]!;
    p += 2;
    if (p + extensionsLength !== end) return malformed('extensions_length');
    while (p < end) {
      if (p + 4 > end) return malformed('extension_length');
      const type = (b[p]! << 8) | b[p + 1]!;
      const length = (b[p + 2]! << 8) | b[p + 3]!;
      const body = p + 4;
      p = body + length;
      if (p > end) return malformed('extension_length');
      if (type === EXT_SERVER_NAME) {
        if (seen & 1) return malformed('duplicate_extension');
        seen |= 1;
        const name = readServerName(b, body, p);
        if (typeof name === 'object') return name;
        sni = name;
      } else if (type === EXT_ALPN) {
        if (seen & 2) return malformed('duplicate_extension');
        seen |= 2;
        const list = readAlpn(b, body, p);
        if (list === undefined) return malformed('alpn');
        alpn = list;
      } else if (type === EXT_SUPPORTED_VERSIONS) {
        if (seen & 4) return malformed('duplicate_extension');
        seen |= 4;
        const list = readVersions(b, body, p);
        if (list === undefined) return malformed('supported_versions');
        versions = list;
      }
    }
  }
  return sni === undefined ? { kind: 'hello', alpn, versions, legacyVersion, bytes } : { kind: 'hello', sni, alpn, versions, legacyVersion, bytes };
}

/** RFC 6066 server_name: the host_name entry (at most one), normalized; `undefined` when none. */
function readServerName(b: Uint8Array, start: number, end: number): string | undefined | HelloOutcome {
  if (start + 2 > end) return malformed('server_name');
  const listLength = (b[start]! << 8) | b[start + 1]!;
  if (listLength === 0 || start + 2 + listLength !== end) return malformed('server_name');
  let p = start + 2;
  let host: string | undefined;
  while (p < end) {
    if (p + 3 > end) return malformed('server_name');
    const nameType = b[p]!;
    const length = (b[p + 1]! << 8) | b[p + 2]!;
    const value = p + 3;
    p = value + length;
    if (p > end) return malformed('server_name');
    if (nameType !== 0) continue; // no other name type is defined; skip rather than guess
    if (host !== undefined) return malformed('server_name');
    const name = hostName(b, value, p);
    if (name === undefined) return malformed('sni_value');
    host = name;
  }
  return host;
}

/**
 * A DNS name as SNI carries it: LDH labels (underscore tolerated, as some service names use it)
 * of 1..63 bytes, at most 253 bytes without the optional trailing dot. Lowercased; `undefined`
 * when the bytes cannot be a name, so that no odd byte ever reaches a route table or a log line.
 */
function hostName(b: Uint8Array, start: number, end: number): string | undefined {
  let stop = end;
  if (stop > start && b[stop - 1] === 0x2e) stop--; // one trailing dot is the absolute form of the same name
  const length = stop - start;
  if (length < 1 || length > 253) return undefined;
  let label = 0;
  let upper = false;
  for (let i = start; i < stop; i++) {
    const c = b[i]!;
    if (c === 0x2e) {
      if (label === 0) return undefined;
      label = 0;
      continue;
    }
    if (++label > 63) return undefined;
    if (c >= 0x61 && c <= 0x7a) continue;
    if ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) continue;
    if (c >= 0x41 && c <= 0x5a) {
      upper = true;
      continue;
    }
    return undefined;
  }
  if (label === 0) return undefined;
  const name = Buffer.from(b.buffer, b.byteOffset + start, length).toString('latin1');
  return upper ? name.toLowerCase() : name;
}

/** RFC 7301 ProtocolNameList: non-empty list of non-empty names. */
function readAlpn(b: Uint8Array, start: number, end: number): string[] | undefined {
  if (start + 2 > end) return undefined;
  const listLength = (b[start]! << 8) | b[start + 1]!;
  if (listLength < 2 || start + 2 + listLength !== end) return undefined;
  const names: string[] = [];
  const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let p = start + 2; p < end; ) {
    const length = b[p]!;
    if (length === 0 || p + 1 + length > end) return undefined;
    names.push(view.toString('latin1', p + 1, p + 1 + length));
    p += 1 + length;
  }
  return names;
}

/** RFC 8446 4.2.1, ClientHello form: a one-byte length, then 2..254 bytes of versions. */
function readVersions(b: Uint8Array, start: number, end: number): number[] | undefined {
  if (start + 1 > end) return undefined;
  const length = b[start]!;
  if (length < 2 || length % 2 !== 0 || start + 1 + length !== end) return undefined;
  const versions: number[] = [];
  for (let p = start + 1; p < end; p += 2) versions.push((b[p]! << 8) | b[p + 1]!);
  return versions;
}

export type PlaintextGuess = 'http' | 'not_http' | 'incomplete';

/** Longest method token we wait for; longer first words are not HTTP we serve. */
const MAX_METHOD_LENGTH = 20;

/**
 * PERMISSIVE listeners: do the first bytes start like an HTTP/1 request line, a method token
 * (RFC 9110 tchar, uppercase letters in practice) followed by a space? `incomplete` while the
 * bytes so far are a token prefix that could still become one.
 */
export function looksLikeHttp(firstBytes: Uint8Array): PlaintextGuess {
  const n = Math.min(firstBytes.length, MAX_METHOD_LENGTH + 1);
  for (let i = 0; i < n; i++) {
    const c = firstBytes[i]!;
    if (c === 0x20) return i > 0 ? 'http' : 'not_http';
    if (!isTchar(c)) return 'not_http';
  }
  return firstBytes.length > MAX_METHOD_LENGTH ? 'not_http' : 'incomplete';
}

function isTchar(c: number): boolean {
  if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)) return true;
  // ! # $ % & ' * + - . ^ _ ` | ~
  return c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d || c === 0x2e || c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e;
}
