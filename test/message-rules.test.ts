// The protocol-neutral message rules (gateway/message/): which headers are hop-by-hop in each
// direction, what a Connection header may name away, and how Content-Length is found and read.
import { describe, expect, it } from 'vitest';
import { contentLength, isContentLength } from '../gateway/message/content-length.js';
import { namedByRequestConnection, namedByResponseConnection, REQUEST_HOP_BY_HOP, RESPONSE_HOP_BY_HOP, withoutNamed } from '../gateway/message/hop-by-hop.js';

describe('hop-by-hop rules', () => {
  it('list the connection-specific headers for both directions, and each direction its proxy headers', () => {
    for (const name of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']) {
      expect(REQUEST_HOP_BY_HOP).toContain(name);
      expect(RESPONSE_HOP_BY_HOP).toContain(name);
    }
    expect(REQUEST_HOP_BY_HOP).toEqual(expect.arrayContaining(['expect', 'proxy-authorization']));
    expect(RESPONSE_HOP_BY_HOP).toContain('proxy-authenticate');
    expect(REQUEST_HOP_BY_HOP).not.toContain('host');
  });

  it("let a request's Connection header name any header but Host and Content-Length, a response's any", () => {
    expect(namedByRequestConnection('close, X-Secret, Host, content-length')).toEqual(new Set(['x-secret']));
    expect(namedByRequestConnection('keep-alive')).toBeUndefined();
    expect(namedByRequestConnection('close, host')).toBeUndefined();
    expect(namedByResponseConnection('Set-Cookie, content-length')).toEqual(new Set(['set-cookie', 'content-length']));
  });

  it('remove the named headers from a flat list whatever their case, keeping the order of the rest', () => {
    expect(withoutNamed(['A', '1', 'X-Secret', '2', 'b', '3', 'x-secret', '4'], new Set(['x-secret']))).toEqual(['A', '1', 'b', '3']);
  });
});

describe('Content-Length', () => {
  it('is recognised in any case and only by its exact name', () => {
    expect(isContentLength('Content-Length')).toBe(true);
    expect(isContentLength('CONTENT-LENGTH')).toBe(true);
    expect(isContentLength('content-lengthx')).toBe(false);
    expect(isContentLength('x-content-length')).toBe(false);
  });

  it('is read from the first one in a flat list, -1 without one', () => {
    expect(contentLength(['date', 'x', 'Content-Length', '42', 'content-length', '42'])).toBe(42);
    expect(contentLength(['content-length', '0'])).toBe(0);
    expect(contentLength(['transfer-encoding', 'chunked'])).toBe(-1);
  });
});
