// The ClientHello reader against hellos captured from openssl, curl and node (test/fixtures/hellos,
// see capture.mjs there): every prefix, one byte at a time, re-framed across TLS records, grown
// past the bound, hand-made malformed ones, and a seeded fuzz that must never throw or read past
// the bound.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ClientHelloReader, DEFAULT_MAX_HELLO_BYTES, looksLikeHttp, type HelloOutcome } from '../gateway/passthrough/client-hello.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'hellos');
const load = (name: string) => Buffer.from(fs.readFileSync(path.join(FIXTURES, `${name}.hex`), 'utf8').replace(/\s/g, ''), 'hex');

const TLS13 = 0x0304;
const TLS12 = 0x0303;
const CAPTURED: { name: string; sni: string | undefined; alpn: string[]; versions: number[]; minLength?: number }[] = [
  { name: 'openssl-h2', sni: 'openssl.example.com', alpn: ['h2', 'http/1.1'], versions: [TLS13, TLS12, 0x0302, 0x0301] },
  { name: 'openssl-tls12-no-sni', sni: undefined, alpn: [], versions: [] },
  { name: 'openssl-ffdhe8192', sni: 'big.example.com', alpn: ['h2'], versions: [TLS13, TLS12, 0x0302, 0x0301], minLength: 1200 },
  { name: 'curl', sni: 'curl.example.com', alpn: ['h2', 'http/1.1'], versions: [TLS13, TLS12, 0x0302, 0x0301] },
  { name: 'node', sni: 'node.example.com', alpn: ['h2', 'http/1.1'], versions: [TLS13, TLS12] },
  { name: 'node-big-alpn', sni: 'alpn.example.com', alpn: Array.from({ length: 100 }, (_, i) => `x-protocol-${String(i).padStart(8, '0')}`), versions: [TLS13, TLS12], minLength: 2000 },
];

// ---- building and re-framing hellos ----

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const record = (fragment: Buffer, type = 22) => Buffer.concat([Buffer.from([type, 3, 1]), u16(fragment.length), fragment]);
const handshake = (body: Buffer, type = 1) => Buffer.concat([Buffer.from([type]), u24(body.length), body]);
const extension = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const sniExtension = (...names: (string | Buffer)[]) => {
  const entries = names.map((n) => (typeof n === 'string' ? Buffer.from(n, 'latin1') : n)).map((n) => Buffer.concat([Buffer.from([0]), u16(n.length), n]));
  const list = Buffer.concat(entries);
  return extension(0, Buffer.concat([u16(list.length), list]));
};
const alpnExtension = (...names: string[]) => {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));
  return extension(16, Buffer.concat([u16(list.length), list]));
};
/** A minimal ClientHello body: TLS 1.2 legacy version, zero random, one suite, null compression. */
const helloBody = (...extensions: Buffer[]) => {
  const fixed = Buffer.concat([u16(TLS12), Buffer.alloc(32), Buffer.from([0]), u16(2), u16(0x1301), Buffer.from([1, 0])]);
  if (extensions.length === 0) return fixed;
  const all = Buffer.concat(extensions);
  return Buffer.concat([fixed, u16(all.length), all]);
};
const hello = (...extensions: Buffer[]) => record(handshake(helloBody(...extensions)));

/** The handshake message (header included) carried by the records of `raw`. */
function messageOf(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let p = 0; p < raw.length; ) {
    const length = raw.readUInt16BE(p + 3);
    parts.push(raw.subarray(p + 5, p + 5 + length));
    p += 5 + length;
  }
  return Buffer.concat(parts);
}

/** Re-frames a handshake message into records of at most `size` bytes. */
function reframe(message: Buffer, size: number): Buffer {
  const records: Buffer[] = [];
  for (let p = 0; p < message.length; p += size) records.push(record(message.subarray(p, p + size)));
  return Buffer.concat(records);
}

/** Adds a padding extension (RFC 7685) of `padding` bytes to a captured hello's message. */
function padded(raw: Buffer, padding: number): Buffer {
  const message = messageOf(raw);
  const body = message.subarray(4);
  let p = 2 + 32;
  p += 1 + body[p]!;
  p += 2 + body.readUInt16BE(p);
  p += 1 + body[p]!;
  const extensions = body.subarray(p + 2);
  const grown = Buffer.concat([extensions, extension(21, Buffer.alloc(padding))]);
  return handshake(Buffer.concat([body.subarray(0, p), u16(grown.length), grown]));
}

function feed(reader: ClientHelloReader, bytes: Buffer, chunkSizes: () => number): HelloOutcome {
  let outcome = reader.outcome;
  for (let p = 0; p < bytes.length; ) {
    const n = Math.max(1, chunkSizes());
    outcome = reader.push(bytes.subarray(p, p + n));
    p += n;
  }
  return outcome;
}

/** mulberry32: a small seeded generator, so a failing fuzz case can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('captured ClientHellos', () => {
  for (const fixture of CAPTURED) {
    const raw = load(fixture.name);

    test(`${fixture.name}: SNI (lowercase, no trailing dot), ALPN and versions are read`, () => {
      if (fixture.minLength) expect(raw.length).toBeGreaterThanOrEqual(fixture.minLength);
      const outcome = new ClientHelloReader().push(raw);
      expect(outcome).toEqual({ kind: 'hello', ...(fixture.sni ? { sni: fixture.sni } : {}), alpn: fixture.alpn, versions: fixture.versions, legacyVersion: TLS12, bytes: raw.length });
    });

    test(`${fixture.name}: every proper prefix is incomplete`, () => {
      for (let n = 0; n < raw.length; n++) expect(new ClientHelloReader().push(raw.subarray(0, n)).kind, `prefix ${n}`).toBe('incomplete');
    });

    test(`${fixture.name}: fed one byte at a time, the hello appears at the last byte`, () => {
      const reader = new ClientHelloReader();
      for (let n = 0; n < raw.length - 1; n++) expect(reader.push(raw.subarray(n, n + 1)).kind, `byte ${n}`).toBe('incomplete');
      const last = reader.push(raw.subarray(raw.length - 1));
      expect(last).toMatchObject({ kind: 'hello', bytes: raw.length });
      expect(last.kind === 'hello' ? last.sni : 'not a hello').toBe(fixture.sni);
    });

    test(`${fixture.name}: re-framed across many TLS records and TCP segments`, () => {
      const message = messageOf(raw);
      const random = seeded(raw.length);
      for (const size of [1, 3, 16, 100, 511]) {
        const reframed = reframe(message, size);
        const expected = { kind: 'hello', ...(fixture.sni ? { sni: fixture.sni } : {}), alpn: fixture.alpn, bytes: reframed.length };
        const whole = new ClientHelloReader().push(reframed);
        if (reframed.length > DEFAULT_MAX_HELLO_BYTES) {
          expect(whole.kind).toBe('too_large'); // 1-byte records cost 5 header bytes each
          continue;
        }
        expect(whole).toMatchObject(expected);
        expect(feed(new ClientHelloReader(), reframed, () => Math.floor(random() * 64))).toMatchObject(expected);
        // Every prefix of a multi-record hello is incomplete too.
        for (let n = 0; n < reframed.length; n += 7) expect(new ClientHelloReader().push(reframed.subarray(0, n)).kind).toBe('incomplete');
      }
    });
  }

  test('bytes after the hello (early data, a second record) are not read and do not change the answer', () => {
    const raw = load('curl');
    const withMore = Buffer.concat([raw, record(Buffer.alloc(100, 7), 23)]);
    expect(new ClientHelloReader().push(withMore)).toMatchObject({ kind: 'hello', sni: 'curl.example.com', bytes: raw.length });
  });

  test('once decided, the answer is final and further bytes are not looked at', () => {
    const reader = new ClientHelloReader();
    const first = reader.push(load('node'));
    expect(reader.push(Buffer.from('garbage'))).toBe(first);
    const notTls = new ClientHelloReader();
    expect(notTls.push(Buffer.from('GET / HTTP/1.1\r\n')).kind).toBe('not_tls');
    expect(notTls.push(load('node')).kind).toBe('not_tls');
  });
});

describe('the size bound', () => {
  test('a ≈2 KB hello (padding extension) split across two records parses; at every prefix it is incomplete', () => {
    const message = padded(load('curl'), 1500);
    const raw = reframe(message, 1024);
    expect(raw.length).toBeGreaterThan(2000);
    expect(new ClientHelloReader().push(raw)).toMatchObject({ kind: 'hello', sni: 'curl.example.com', bytes: raw.length });
    for (let n = 0; n < raw.length; n++) expect(new ClientHelloReader().push(raw.subarray(0, n)).kind).toBe('incomplete');
  });

  test('a hello declared larger than the bound is refused from its header, before its body arrives', () => {
    const raw = reframe(padded(load('curl'), 20_000), 16_384);
    const reader = new ClientHelloReader();
    expect(reader.push(raw.subarray(0, 9)).kind).toBe('too_large');
    expect(new ClientHelloReader(1024).push(load('node-big-alpn')).kind).toBe('too_large');
  });

  test('tiny records that push the input past the bound are refused at the bound', () => {
    const raw = reframe(messageOf(load('node-big-alpn')), 1); // ~14 KB of input for a 2.4 KB message
    const reader = new ClientHelloReader(4096);
    let pushed = 0;
    while (reader.outcome.kind === 'incomplete' && pushed < raw.length) reader.push(raw.subarray(pushed, (pushed += 100)));
    expect(reader.outcome.kind).toBe('too_large');
    expect(pushed).toBeLessThanOrEqual(4096 + 100);
  });

  test('a hello exactly at the bound parses; one byte over is too large', () => {
    const raw = load('node');
    expect(new ClientHelloReader(raw.length).push(raw).kind).toBe('hello');
    expect(new ClientHelloReader(raw.length - 1).push(raw).kind).toBe('too_large');
  });
});

describe('not TLS', () => {
  test.each([
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['an SSLv2-style hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])],
    ['0x16 followed by another protocol', Buffer.from([0x16, 0x00, 0x00])],
    ['an SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')],
    ['a TLS alert record', record(Buffer.from([2, 40]), 21)],
  ])('%s', (_, bytes) => {
    expect(new ClientHelloReader().push(bytes).kind).toBe('not_tls');
  });

  test('the verdict comes from the first byte or two, without waiting for more', () => {
    expect(new ClientHelloReader().push(Buffer.from('G')).kind).toBe('not_tls');
    expect(new ClientHelloReader().push(Buffer.from([0x16])).kind).toBe('incomplete');
    expect(new ClientHelloReader().push(Buffer.from([0x16, 0x02])).kind).toBe('not_tls');
  });
});

describe('malformed hellos', () => {
  const body = helloBody(sniExtension('ok.example.com'));
  const cases: [string, Buffer, string][] = [
    ['a later record that is not a handshake record', Buffer.concat([record(handshake(body).subarray(0, 10)), record(handshake(body).subarray(10), 23)]), 'record_type'],
    ['a later record with another major version', Buffer.concat([record(handshake(body).subarray(0, 10)), Buffer.from([22, 2, 1, 0, 1, 0])]), 'record_version'],
    ['a zero-length record', Buffer.concat([Buffer.from([22, 3, 1, 0, 0])]), 'record_length'],
    ['a record over 2^14 + 2048 bytes', Buffer.concat([Buffer.from([22, 3, 1]), u16(16384 + 2049)]), 'record_length'],
    ['a ServerHello instead of a ClientHello', record(handshake(body, 2)), 'handshake_type'],
    ['a ClientHello too short for its fixed fields', record(handshake(Buffer.alloc(20))), 'hello_length'],
    ['a session id longer than 32 bytes', record(handshake(Buffer.concat([Buffer.alloc(34), Buffer.from([33]), Buffer.alloc(40)]))), 'hello_body'],
    ['cipher suites running past the message', record(handshake(Buffer.concat([Buffer.alloc(34), Buffer.from([0]), u16(400), Buffer.alloc(10)]))), 'hello_body'],
    ['an odd cipher suites length', record(handshake(Buffer.concat([Buffer.alloc(34), Buffer.from([0]), u16(3), Buffer.alloc(3), Buffer.from([1, 0])]))), 'hello_body'],
    ['no compression method', record(handshake(Buffer.concat([Buffer.alloc(34), Buffer.from([0]), u16(2), Buffer.alloc(2), Buffer.from([0]), Buffer.alloc(4)]))), 'hello_body'],
    ['an extensions length that disagrees with the message', record(handshake(Buffer.concat([body, Buffer.from([0])]))), 'extensions_length'],
    ['an extension running past the list', hello(Buffer.concat([u16(0), u16(50), Buffer.alloc(4)])), 'extension_length'],
    ['two server_name extensions', hello(sniExtension('a.example'), sniExtension('b.example')), 'duplicate_extension'],
    ['two ALPN extensions', hello(alpnExtension('h2'), alpnExtension('h2')), 'duplicate_extension'],
    ['two host_name entries', hello(sniExtension('a.example', 'b.example')), 'server_name'],
    ['an empty server_name list', hello(extension(0, u16(0))), 'server_name'],
    ['a server_name list length that disagrees', hello(extension(0, Buffer.concat([u16(10), Buffer.from([0]), u16(1), Buffer.from('a')]))), 'server_name'],
    ['an SNI with a space', hello(sniExtension('bad name.example')), 'sni_value'],
    ['an SNI with a NUL byte', hello(sniExtension(Buffer.from('evil.example\0.good.example', 'latin1'))), 'sni_value'],
    ['an SNI with a non-ASCII byte', hello(sniExtension(Buffer.from([0x61, 0xff, 0x2e, 0x62]))), 'sni_value'],
    ['an SNI with an empty label', hello(sniExtension('a..example')), 'sni_value'],
    ['an SNI that is only a dot', hello(sniExtension('.')), 'sni_value'],
    ['an empty SNI', hello(sniExtension('')), 'sni_value'],
    ['an SNI label over 63 bytes', hello(sniExtension(`${'a'.repeat(64)}.example`)), 'sni_value'],
    ['an SNI over 253 bytes', hello(sniExtension(Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.'))), 'sni_value'],
    ['an ALPN list with an empty name', hello(extension(16, Buffer.concat([u16(3), Buffer.from([0, 1, 0x61])]))), 'alpn'],
    ['an empty ALPN list', hello(extension(16, u16(0))), 'alpn'],
    ['an odd supported_versions list', hello(extension(43, Buffer.from([3, 3, 4, 3]))), 'supported_versions'],
    ['a ClientHello followed by more handshake bytes in its record', record(Buffer.concat([handshake(body), Buffer.from([20, 0, 0, 0])])), 'trailing_bytes'],
  ];
  test.each(cases)('%s', (_, bytes, detail) => {
    expect(new ClientHelloReader().push(bytes)).toEqual({ kind: 'malformed', detail });
    // The same verdict when the bytes trickle in.
    expect(feed(new ClientHelloReader(), bytes, () => 1)).toEqual({ kind: 'malformed', detail });
  });

  test('hand-made hellos that are valid: no extensions at all, an underscore, an upper-case SNI, unknown name types', () => {
    expect(new ClientHelloReader().push(hello())).toMatchObject({ kind: 'hello', alpn: [], versions: [] });
    expect(new ClientHelloReader().push(hello(sniExtension('_svc.Example.COM.')))).toMatchObject({ sni: '_svc.example.com' });
    const otherType = Buffer.concat([Buffer.from([7]), u16(3), Buffer.from('abc')]);
    const list = Buffer.concat([otherType, Buffer.from([0]), u16(9), Buffer.from('a.example')]);
    expect(new ClientHelloReader().push(hello(extension(0, Buffer.concat([u16(list.length), list]))))).toMatchObject({ sni: 'a.example' });
    const longest = Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.').slice(0, 253);
    expect(new ClientHelloReader().push(hello(sniExtension(longest + '.')))).toMatchObject({ sni: longest });
  });
});

describe('fuzzed and truncated input', () => {
  const raws = CAPTURED.map((f) => load(f.name));
  const VALID = new Set(['hello', 'incomplete', 'not_tls', 'too_large', 'malformed']);

  test('random mutations never throw, always answer a known outcome, and never read past the bound', () => {
    const random = seeded(0x5eed);
    const ITERATIONS = 4000;
    let hellos = 0;
    let malformedCount = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const source = raws[Math.floor(random() * raws.length)]!;
      const bytes = Buffer.from(source);
      const mutations = 1 + Math.floor(random() * 6);
      for (let m = 0; m < mutations; m++) {
        // Bias mutations toward the headers and extension lengths, where parsers break.
        const at = random() < 0.5 ? Math.floor(random() * Math.min(bytes.length, 80)) : Math.floor(random() * bytes.length);
        bytes[at] = random() < 0.3 ? bytes[at]! ^ (1 << Math.floor(random() * 8)) : Math.floor(random() * 256);
      }
      const input = random() < 0.2 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
      const maxBytes = random() < 0.3 ? 64 + Math.floor(random() * 2048) : DEFAULT_MAX_HELLO_BYTES;
      const reader = new ClientHelloReader(maxBytes);
      let pushed = 0;
      let outcome: HelloOutcome = reader.outcome;
      for (let p = 0; p < input.length; ) {
        const n = 1 + Math.floor(random() * 300);
        outcome = reader.push(input.subarray(p, p + n));
        p += n;
        pushed = Math.min(p, input.length);
        if (pushed >= maxBytes) expect(outcome.kind).not.toBe('incomplete');
      }
      expect(VALID.has(outcome.kind)).toBe(true);
      if (outcome.kind === 'hello') {
        hellos++;
        expect(outcome.bytes).toBeLessThanOrEqual(Math.min(maxBytes, input.length));
        if (outcome.sni !== undefined) expect(outcome.sni).toMatch(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/);
      }
      if (outcome.kind === 'malformed') malformedCount++;
    }
    // The fuzz reaches both sides: mutations the parser tolerates (random bytes) and ones it refuses.
    expect(hellos).toBeGreaterThan(ITERATIONS / 10);
    expect(malformedCount).toBeGreaterThan(ITERATIONS / 20);
  });

  test('an endless stream of handshake records never stays incomplete past the bound', () => {
    const reader = new ClientHelloReader();
    // A body of 16376 bytes: with its 4-byte and the record's 5-byte header, one byte over 16 KiB.
    expect(reader.push(Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x00, 0x3f, 0xf8])).kind).toBe('too_large');
    expect(new ClientHelloReader().push(Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x00, 0x3f, 0xf7])).kind).toBe('incomplete');
    const many = new ClientHelloReader();
    const start = record(handshake(Buffer.alloc(8000)).subarray(0, 100));
    let pushed = many.push(start).kind === 'incomplete' ? start.length : 0;
    const chunk = record(Buffer.alloc(1000));
    while (many.outcome.kind === 'incomplete' && pushed < 100_000) {
      many.push(chunk);
      pushed += chunk.length;
    }
    expect(many.outcome.kind).toBe('malformed'); // 8000-byte message ends mid-record: trailing bytes
  });
});

describe('looksLikeHttp', () => {
  test.each([
    ['GET / HTTP/1.1\r\n', 'http'],
    ['POST /x HTTP/1.1', 'http'],
    ['PROPFIND / HTTP/1.1', 'http'],
    ['OPTIONS * HTTP/1.1', 'http'],
    ['GE', 'incomplete'],
    ['', 'incomplete'],
    [' GET /', 'not_http'],
    ['GET\r\n', 'not_http'],
    ['\x16\x03\x01', 'not_http'],
    ['SSH-2.0-OpenSSH\r\n', 'not_http'],
    ['A'.repeat(21), 'not_http'],
    ['A'.repeat(20), 'incomplete'],
  ])('%j → %s', (text, expected) => {
    expect(looksLikeHttp(Buffer.from(text, 'latin1'))).toBe(expected);
  });
});
