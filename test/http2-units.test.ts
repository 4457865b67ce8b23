// The HTTP/2 session's pure parts, as scenario tables: grpc-timeout values, the gRPC status each
// of the gateway's refusals becomes and how its message is encoded, an HTTP/2 request head as the
// request path reads it, the flood guard's counts, the close reason of the engine's errors, and
// the listener keys in YAML (tls.alpn, limits) with their problems at file, line and field.
import { describe, expect, it } from 'vitest';
import { embeddedDefaultYaml } from '../gateway/config/embedded-default.js';
import { parseConfig } from '../gateway/config/load-config.js';
import { FloodGuard, MAX_PINGS_PER_SECOND, MAX_SETTINGS_PER_SECOND } from '../gateway/http2/flood-guard.js';
import { parseGrpcTimeout } from '../gateway/http2/grpc-timeout.js';
import { closeReasonOf } from '../gateway/http2/session-errors.js';
import { readStreamHead } from '../gateway/http2/stream-head.js';
import { grpcStatusOf } from '../gateway/session/grpc-status.js';
import { encodeGrpcMessageText as percentEncode } from '../gateway/grpc/grpc-wire.js';
import { terminateYaml } from './support/gateway-config.js';

describe('grpc-timeout', () => {
  it.each([
    ['1H', 3_600_000],
    ['2M', 120_000],
    ['3S', 3_000],
    ['250m', 250],
    ['1500u', 1.5],
    ['2000000n', 2],
    ['0m', 0],
    ['99999999S', 2 ** 31 - 1], // capped at what a timer waits
  ])('%s is %d ms', (value, ms) => {
    expect(parseGrpcTimeout(value)).toBe(ms);
  });

  it.each(['', 'S', '5', '123456789S', '1s', '1h', '-1S', '1.5S', ' 1S', '1S ', '0x1S'])('refuses %j', (value) => {
    expect(parseGrpcTimeout(value)).toBeUndefined();
  });
});

describe('gRPC statuses of the gateway refusals', () => {
  it.each([
    [403, 'not_allowed', 7],
    [403, 'no_identity', 16],
    [404, 'no_route', 12],
    [408, 'request_body_timeout', 4],
    [504, 'upstream_headers_timeout', 4],
    [504, 'grpc_deadline_exceeded', 4],
    [413, 'request_body_too_large', 8],
    [502, 'upstream_unavailable', 14],
    [503, 'upstream_overflow', 14],
    [400, 'bad_path', 13],
    [421, 'sni_host_mismatch', 13],
    [431, 'request_header_too_large', 13],
  ])('%d %s is grpc-status %d', (status, reason, grpc) => {
    expect(grpcStatusOf(status, reason)).toBe(grpc);
  });

  it.each([
    ['not_allowed: caller is not allowed on this route', 'not_allowed: caller is not allowed on this route'],
    ['100% sure', '100%25 sure'],
    ['café', 'caf%C3%A9'],
    ['two\nlines', 'two%0Alines'],
    ['\u{1F600}', '%F0%9F%98%80'],
  ])('percent-encodes grpc-message %j as %j (printable ASCII but %% kept)', (text, encoded) => {
    expect(percentEncode(text)).toBe(encoded);
    expect(decodeURIComponent(encoded)).toBe(text);
  });
});

describe('an HTTP/2 request head as the request path reads it', () => {
  const pseudo = (extra: string[] = [], method = 'GET', scheme = 'https') => [':method', method, ':scheme', scheme, ':authority', 'api.test', ':path', '/a?b=1', ...extra];

  it('takes the pseudo-headers out and gives :authority as host, first', () => {
    const head = readStreamHead(pseudo(['accept', '*/*']), 16384);
    expect(head).toMatchObject({ method: 'GET', url: '/a?b=1', rawHeaders: ['host', 'api.test', 'accept', '*/*'], grpc: false, contentLength: -1, refusal: undefined });
  });

  it('drops a host equal to :authority and keeps one that differs (the request path refuses two)', () => {
    expect(readStreamHead(pseudo(['host', 'api.test']), 16384).rawHeaders).toEqual(['host', 'api.test']);
    expect(readStreamHead(pseudo(['host', 'other.test']), 16384).rawHeaders).toEqual(['host', 'api.test', 'host', 'other.test']);
  });

  it('takes host when there is no :authority, and gives none when there is neither', () => {
    expect(readStreamHead([':method', 'GET', ':scheme', 'https', ':path', '/', 'host', 'h.test'], 16384).rawHeaders).toEqual(['host', 'h.test']);
    expect(readStreamHead([':method', 'GET', ':scheme', 'https', ':path', '/', 'x', 'y'], 16384).rawHeaders).toEqual(['x', 'y']);
  });

  it('joins cookie fields into one (RFC 9113 §8.2.3)', () => {
    expect(readStreamHead(pseudo(['cookie', 'a=1', 'x', 'y', 'cookie', 'b=2']), 16384).rawHeaders).toEqual(['host', 'api.test', 'x', 'y', 'cookie', 'a=1; b=2']);
  });

  it('reads gRPC, content-length, te: trailers and grpc-timeout', () => {
    const head = readStreamHead(pseudo(['content-type', 'application/grpc+proto', 'te', 'trailers', 'content-length', '12', 'grpc-timeout', '5S'], 'POST'), 16384);
    expect(head).toMatchObject({ grpc: true, trailers: true, contentLength: 12, timeoutMs: 5000, refusal: undefined });
    // Forwarded as they came.
    expect(head.rawHeaders).toContain('grpc-timeout');
    // grpc-timeout on a request that is not gRPC means nothing here.
    expect(readStreamHead(pseudo(['grpc-timeout', 'nonsense']), 16384)).toMatchObject({ timeoutMs: undefined, refusal: undefined });
  });

  it.each([
    ['CONNECT', [':method', 'CONNECT', ':authority', 'a:443'], 405, 'connect'],
    [':scheme http', pseudo([], 'GET', 'http'), 400, 'scheme'],
    ['a malformed grpc-timeout', pseudo(['content-type', 'application/grpc', 'grpc-timeout', '10x']), 400, 'grpc_timeout'],
    ['a header list over the limit', pseudo(['x-big', 'b'.repeat(1000)]), 431, 'header_list_size'],
  ])('refuses %s', (_what, raw, status, rule) => {
    expect(readStreamHead(raw as string[], 1024).refusal).toMatchObject({ status, rule });
  });

  it('counts the header list as RFC 9113 §6.5.2 does: name, value and 32 per field', () => {
    const raw = pseudo(['x', 'y']); // 7+3+32 + 7+5+32 + 10+8+32 + 5+6+32 + 1+1+32 = 213
    expect(readStreamHead(raw, 213).refusal).toBeUndefined();
    expect(readStreamHead(raw, 212).refusal).toMatchObject({ rule: 'header_list_size' });
  });
});

describe('the flood guard', () => {
  it('rapid reset: 100 premature resets that are half of all streams', () => {
    const guard = new FloodGuard();
    for (let i = 0; i < 200; i++) guard.streamOpened();
    for (let i = 0; i < 99; i++) expect(guard.streamReset(5)).toBeUndefined();
    expect(guard.streamReset(5)).toBe('rapid_reset');
  });

  it('not when the resets are under half of the streams, or come a second after the stream opened', () => {
    const guard = new FloodGuard();
    for (let i = 0; i < 201; i++) guard.streamOpened();
    for (let i = 0; i < 100; i++) expect(guard.streamReset(5)).toBeUndefined();
    const late = new FloodGuard();
    late.streamOpened();
    for (let i = 0; i < 500; i++) expect(late.streamReset(1000)).toBeUndefined();
  });

  it('PINGs and SETTINGS: past their rate within one second, and a new second starts over', () => {
    const guard = new FloodGuard();
    for (let i = 0; i < MAX_PINGS_PER_SECOND; i++) expect(guard.ping(10_000)).toBeUndefined();
    expect(guard.ping(10_999)).toBe('ping_flood');
    expect(guard.ping(11_000)).toBeUndefined();
    for (let i = 0; i < MAX_SETTINGS_PER_SECOND; i++) expect(guard.settings(20_000)).toBeUndefined();
    expect(guard.settings(20_500)).toBe('settings_flood');
  });

  it("names nghttp2's flood by what the client sent most of this second", () => {
    expect(new FloodGuard().floodedBy()).toBe('frame_flood');
    const pings = new FloodGuard();
    pings.ping(1);
    expect(pings.floodedBy()).toBe('ping_flood');
    const settings = new FloodGuard();
    settings.settings(1);
    settings.settings(1);
    settings.ping(1);
    expect(settings.floodedBy()).toBe('settings_flood');
  });
});

describe("the engine's errors as close reasons", () => {
  // nghttp2's codes (nghttp2.h), as the engine reports them (EV_ERROR).
  it.each([
    [-905, 'continuation_flood'], // NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
    [-904, 'frame_flood'], // NGHTTP2_ERR_FLOODED, with no PING or SETTINGS seen this second
    [-505, 'protocol_error'], // NGHTTP2_ERR_PROTO
    [-510, 'protocol_error'], // NGHTTP2_ERR_STREAM_CLOSED
    [-903, 'protocol_error'], // NGHTTP2_ERR_BAD_CLIENT_MAGIC
  ])('%s → %s', (code, reason) => {
    expect(closeReasonOf(code, new FloodGuard())).toBe(reason);
  });
});

describe('listener keys for HTTP/2 in YAML', () => {
  // Lines at 4 spaces are listener keys, at 6 keys of tls (terminateYaml puts them after client_auth).
  const yaml = (listenerLines: string, tlsLines = '') => terminateYaml({ certFile: 'server.crt', keyFile: 'server.key', trustBundle: 'ca.crt', tlsLines: tlsLines + listenerLines });
  const parse = (text: string) => parseConfig(text, 'h2.yaml', '/nonexistent', { checkFiles: false });
  const problems = (text: string) => {
    const result = parse(text);
    if (result.ok) throw new Error('expected problems');
    return result.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`);
  };

  it('offers h2 then http/1.1, and limits of 100 streams and 16 KiB header lists, by default', () => {
    const result = parse(yaml(''));
    if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
    expect(result.config.listeners[0]!.tls!.alpn).toEqual(['h2', 'http/1.1']);
    expect(result.config.listeners[0]!.limits).toEqual({ maxConcurrentStreams: 100, maxHeaderBytes: 16384 });
  });

  it('the embedded default (npm start) offers h2, so curl --http2 speaks HTTP/2 to the demo', () => {
    const result = parse(embeddedDefaultYaml());
    if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
    expect(result.config.listeners.find((l) => l.name === 'terminate')!.tls!.alpn[0]).toBe('h2');
  });

  it('takes tls.alpn and limits as written', () => {
    const result = parse(yaml('    limits: { max_concurrent_streams: 250, max_header_bytes: 64KiB }\n', '      alpn: [http/1.1]\n'));
    if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
    expect(result.config.listeners[0]!.tls!.alpn).toEqual(['http/1.1']);
    expect(result.config.listeners[0]!.limits).toEqual({ maxConcurrentStreams: 250, maxHeaderBytes: 65536 });
  });

  it('refuses an ALPN id terminate routes do not serve, and limits out of range, at their field', () => {
    expect(problems(yaml('', '      alpn: [h2, h3]\n'))).toEqual(["h2.yaml:10:18: listeners[0].tls.alpn[1]: 'h3' cannot be offered: terminate routes serve h2 and http/1.1"]);
    expect(problems(yaml('    limits:\n      max_concurrent_streams: 0\n      max_header_bytes: 512\n'))).toEqual([
      'h2.yaml:11:31: listeners[0].limits.max_concurrent_streams: 0 is out of range (1 to 100000)',
      'h2.yaml:12:25: listeners[0].limits.max_header_bytes: must be between 1KiB and 8MiB (a header list needs a limit: it is held in memory whole)',
    ]);
    expect(problems(yaml('    limits: { max_header_bytes: unlimited, max_streams: 5 }\n'))).toEqual([
      'h2.yaml:10:33: listeners[0].limits.max_header_bytes: must be between 1KiB and 8MiB (a header list needs a limit: it is held in memory whole)',
      "h2.yaml:10:44: listeners[0].limits.max_streams: unknown key 'max_streams'",
    ]);
  });
});
