// The access log line's own formatting: valid JSON whatever the strings hold, milliseconds with
// three decimals, the connection's fields rendered once and appended to each of its lines, written
// as bytes within the room reserved for it; and the batching writer that carries the lines.
import { describe, expect, it } from 'vitest';
import { type AccessEntry, accessLineBound, connectionFields, writeAccessLine } from '../gateway/access-log/access-line.js';
import { LineBytes } from '../gateway/access-log/line-bytes.js';

/** The line of `e`, written into a buffer of exactly the room its bound reserves. */
function line(e: AccessEntry, nowMs?: number): string {
  const out = new LineBytes();
  out.buf = Buffer.alloc(accessLineBound(e));
  writeAccessLine(out, e, nowMs);
  return out.buf.toString('utf8', 0, out.pos);
}

const AWKWARD = ['/plain/path-1.txt', 'quote"d', 'back\\slash', 'tab\there', 'nul\u0000', 'caf\u00e9', 'lone \ud800 surrogate', '\u007f', '\u001f'.repeat(40), '\u{1f600}'];

describe('access line', () => {
  it('escapes what JSON needs escaped and leaves plain text as it is', () => {
    for (const value of AWKWARD) {
      const out = new LineBytes();
      out.buf = Buffer.alloc(LineBytes.bound(value));
      out.string(value);
      expect(out.buf.subarray(0, out.pos).toString()).toBe(JSON.stringify(value));
    }
  });

  it('writes numbers as JSON numbers', () => {
    const out = new LineBytes();
    out.buf = Buffer.alloc(200);
    for (const n of [0, 7, 10, 999, 1000, 65535, 2 ** 53 - 1]) {
      out.pos = 0;
      out.int(n);
      expect(out.buf.toString('latin1', 0, out.pos)).toBe(String(n));
    }
    for (const [ms, text] of [
      [0, '0.000'],
      [12.3456, '12.346'],
      [0.0004, '0.000'],
      [999.9996, '1000.000'],
      [-3, '0.000'],
    ] as const) {
      out.pos = 0;
      out.millis(ms);
      expect(out.buf.toString('latin1', 0, out.pos)).toBe(text);
    }
  });

  it('writes durations as milliseconds with three decimals and the time in ISO 8601 UTC', () => {
    const text = line({ kind: 'request', listener: 'l"1', durationMs: 12.3456, upstreamMs: 0.0004, bytesIn: 1, bytesOut: 2, path: '/a"b', connection: '' }, Date.UTC(2026, 11, 4, 23, 59, 59, 7));
    expect(text).toContain('"duration_ms":12.346,');
    expect(text).toContain('"upstream_ms":0.000,');
    expect(JSON.parse(text)).toEqual({
      time: '2026-12-04T23:59:59.007Z',
      kind: 'request',
      listener: 'l"1',
      path: '/a"b',
      duration_ms: 12.346,
      upstream_ms: 0,
      bytes_in: 1,
      bytes_out: 2,
    });
    expect(JSON.parse(line({ kind: 'relay', listener: 'x', durationMs: 999.9996, bytesIn: 0, bytesOut: 0, connection: '' }, 0))).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      kind: 'relay',
      listener: 'x',
      duration_ms: 1000,
      bytes_in: 0,
      bytes_out: 0,
    });
  });

  it('fits every field, however awkward, in the room it reserves', () => {
    for (const s of AWKWARD) {
      const connection = connectionFields({ protocol: s, identity: s, tlsVersion: s, resumed: false, sni: s, remote: s });
      const e: AccessEntry = { kind: 'request', listener: s, route: s, method: s, path: s, status: 599, reason: s, durationMs: 1e12, upstream: s, endpoint: s, upstreamMs: 1e12, attempts: 99, bytesIn: 2 ** 53 - 1, bytesOut: 2 ** 53 - 1, requestId: s, connection };
      const parsed = JSON.parse(line(e, 8.64e15));
      expect(parsed).toMatchObject({ listener: s, route: s, method: s, path: s, reason: s, upstream: s, endpoint: s, request_id: s, identity: s, sni: s, remote: s, bytes_out: 2 ** 53 - 1 });
    }
  });

  it("appends the connection's fields to the line", () => {
    const connection = connectionFields({ protocol: 'HTTP/2', identity: 'spiffe://example.com/a', tlsVersion: 'TLSv1.3', resumed: true, remote: '::1' });
    const parsed = JSON.parse(line({ kind: 'request', listener: 'l', durationMs: 1, bytesIn: 0, bytesOut: 0, requestId: 'r', connection }));
    expect(parsed).toMatchObject({ protocol: 'HTTP/2', identity: 'spiffe://example.com/a', tls_version: 'TLSv1.3', resumed: true, remote: '::1', request_id: 'r' });
    expect(connectionFields({})).toBe('');
  });
});

describe('access log writer', () => {
  it('writes every line once and intact while several batches are in flight (batch buffers are reused only once written)', async () => {
    const { AccessLogWriter } = await import('../gateway/access-log/access-log-writer.js');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'access-writer-'));
    try {
      const file = path.join(dir, 'access.log');
      const writer = new AccessLogWriter(file);
      const write = (text: string) => {
        const out = writer.line(text.length * 3)!;
        out.raw(text);
        writer.commit();
      };
      // ~1.3 MB: about twenty 64 KiB batches handed to the stream before any write completes.
      const lines = Array.from({ length: 6000 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(200)}","id":"${i.toString(36)}"}`);
      for (const text of lines) write(text);
      await new Promise((resolve) => setImmediate(resolve)); // some writes complete, their buffers return
      const more = lines.map((l) => l.replace('"pad"', '"again"'));
      for (const text of more) write(text);
      write(`{"long":"${'y'.repeat(100_000)}"}`); // longer than a batch: alone in a buffer of its own
      await writer.close();
      expect(fs.readFileSync(file, 'utf8').split('\n')).toEqual([...lines, ...more, `{"long":"${'y'.repeat(100_000)}"}`, '']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
