// The access log line's own formatting: valid JSON whatever the strings hold, milliseconds with
// three decimals, the connection's fields rendered once and appended to each of its lines.
import { describe, expect, it } from 'vitest';
import { accessLine, connectionFields, jsonString } from '../gateway/access-log/access-line.js';

describe('access line', () => {
  it('escapes what JSON needs escaped and leaves plain text as it is', () => {
    for (const value of ['/plain/path-1.txt', 'quote"d', 'back\\slash', 'tab\there', 'nul\u0000', 'caf\u00e9', 'lone \ud800 surrogate', '\u007f']) {
      expect(JSON.parse(jsonString(value))).toBe(value);
      expect(jsonString(value)).toBe(JSON.stringify(value));
    }
  });

  it('writes durations as milliseconds with three decimals and the time in ISO 8601 UTC', () => {
    const line = accessLine(
      { kind: 'request', listener: 'l"1', durationMs: 12.3456, upstreamMs: 0.0004, bytesIn: 1, bytesOut: 2, path: '/a"b', connection: '' },
      Date.UTC(2026, 11, 4, 23, 59, 59, 7),
    );
    expect(line).toContain('"duration_ms":12.346,');
    expect(line).toContain('"upstream_ms":0.000,');
    expect(JSON.parse(line)).toEqual({
      time: '2026-12-04T23:59:59.007Z',
      kind: 'request',
      listener: 'l"1',
      path: '/a"b',
      duration_ms: 12.346,
      upstream_ms: 0,
      bytes_in: 1,
      bytes_out: 2,
    });
    expect(JSON.parse(accessLine({ kind: 'relay', listener: 'x', durationMs: 999.9996, bytesIn: 0, bytesOut: 0, connection: '' }, 0)).duration_ms).toBe(1000);
  });

  it("appends the connection's fields to the line", () => {
    const connection = connectionFields({ protocol: 'HTTP/2', identity: 'spiffe://example.com/a', tlsVersion: 'TLSv1.3', resumed: true, remote: '::1' });
    const line = JSON.parse(accessLine({ kind: 'request', listener: 'l', durationMs: 1, bytesIn: 0, bytesOut: 0, requestId: 'r', connection }));
    expect(line).toMatchObject({ protocol: 'HTTP/2', identity: 'spiffe://example.com/a', tls_version: 'TLSv1.3', resumed: true, remote: '::1', request_id: 'r' });
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
      // ~1.3 MB: about twenty 64 KiB batches handed to the stream before any write completes.
      const lines = Array.from({ length: 6000 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(200)}","id":"${i.toString(36)}"}`);
      for (const line of lines) writer.write(line);
      await new Promise((resolve) => setImmediate(resolve)); // some writes complete, their buffers return
      const more = lines.map((l) => l.replace('"pad"', '"again"'));
      for (const line of more) writer.write(line);
      await writer.close();
      expect(fs.readFileSync(file, 'utf8').split('\n')).toEqual([...lines, ...more, '']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
