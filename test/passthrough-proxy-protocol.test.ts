// PROXY protocol headers (v1 text, v2 binary) for IPv4, IPv6, IPv4-mapped and unknown addresses,
// checked byte for byte against the spec's layout; and the balancer's endpoint order.
import { describe, expect, test } from 'vitest';
import { Balancer } from '../gateway/passthrough/balancer.js';
import { proxyHeaderV1, proxyHeaderV2 } from '../gateway/passthrough/proxy-protocol.js';

const v4 = { sourceAddress: '192.0.2.10', sourcePort: 51000, destinationAddress: '198.51.100.1', destinationPort: 9443 };
const v6 = { sourceAddress: '2001:db8::1', sourcePort: 51000, destinationAddress: '::1', destinationPort: 9443 };

describe('PROXY protocol v1', () => {
  test.each([
    ['IPv4', v4, 'PROXY TCP4 192.0.2.10 198.51.100.1 51000 9443\r\n'],
    ['IPv6', v6, 'PROXY TCP6 2001:db8::1 ::1 51000 9443\r\n'],
    ['IPv4-mapped on a dual-stack listener', { ...v4, sourceAddress: '::ffff:192.0.2.10', destinationAddress: '::FFFF:198.51.100.1' }, 'PROXY TCP4 192.0.2.10 198.51.100.1 51000 9443\r\n'],
    ['a zone id is dropped', { ...v6, sourceAddress: 'fe80::1%eth0', destinationAddress: 'fe80::2%eth0' }, 'PROXY TCP6 fe80::1 fe80::2 51000 9443\r\n'],
    ['unknown addresses', { sourceAddress: undefined, sourcePort: undefined, destinationAddress: undefined, destinationPort: undefined }, 'PROXY UNKNOWN\r\n'],
    ['mixed families', { ...v4, destinationAddress: '::1' }, 'PROXY UNKNOWN\r\n'],
  ])('%s', (_, connection, line) => {
    expect(proxyHeaderV1(connection).toString('latin1')).toBe(line);
  });
});

describe('PROXY protocol v2', () => {
  const SIGNATURE = '0d0a0d0a000d0a515549540a';

  test('IPv4: 16-byte header, 12 bytes of addresses and ports', () => {
    const h = proxyHeaderV2(v4);
    expect(h.toString('hex')).toBe(SIGNATURE + '21' + '11' + '000c' + 'c000020a' + 'c6336401' + 'c738' + '24e3');
  });

  test('IPv6: 36 bytes of addresses and ports, :: expanded', () => {
    const h = proxyHeaderV2(v6);
    expect(h.subarray(12, 16).toString('hex')).toBe('21210024');
    expect(h.subarray(16, 32).toString('hex')).toBe('20010db8000000000000000000000001');
    expect(h.subarray(32, 48).toString('hex')).toBe('00000000000000000000000000000001');
    expect(h.readUInt16BE(48)).toBe(51000);
    expect(h.readUInt16BE(50)).toBe(9443);
    expect(h.length).toBe(52);
  });

  test('IPv6 with an embedded IPv4 tail', () => {
    const h = proxyHeaderV2({ ...v6, sourceAddress: '64:ff9b::192.0.2.33', destinationAddress: '2001:db8:1:2:3:4:5:6' });
    expect(h.subarray(16, 32).toString('hex')).toBe('0064ff9b0000000000000000c0000221');
    expect(h.subarray(32, 48).toString('hex')).toBe('20010db8000100020003000400050006');
  });

  test('the SNI as a PP2_TYPE_AUTHORITY TLV, counted in the length', () => {
    const h = proxyHeaderV2({ ...v4, authority: 'db.example.com' });
    expect(h.readUInt16BE(14)).toBe(12 + 3 + 14);
    expect(h[28]).toBe(0x02);
    expect(h.readUInt16BE(29)).toBe(14);
    expect(h.subarray(31).toString()).toBe('db.example.com');
  });

  test('unknown addresses: family UNSPEC, no address block', () => {
    expect(proxyHeaderV2({ sourceAddress: undefined, sourcePort: undefined, destinationAddress: undefined, destinationPort: undefined }).toString('hex')).toBe(SIGNATURE + '21' + '00' + '0000');
  });
});

describe('Balancer', () => {
  const endpoints = [1, 2, 3].map((port) => ({ host: '127.0.0.1', port }));

  test('round robin rotates the first endpoint whatever the load', () => {
    const b = new Balancer({ name: 'rr', endpoints, balance: 'round_robin' });
    b.acquire(0);
    b.acquire(0);
    expect([b.first(), b.first(), b.first(), b.first()]).toEqual([0, 1, 2, 0]);
  });

  test('least connections picks the least loaded, ties broken by rotation', () => {
    const b = new Balancer({ name: 'lc', endpoints, balance: 'least_connections' });
    const picks: number[] = [];
    for (let i = 0; i < 6; i++) {
      const i0 = b.first();
      b.acquire(i0);
      picks.push(i0);
    }
    expect(picks.sort()).toEqual([0, 0, 1, 1, 2, 2]);
    b.release(1);
    b.release(1);
    expect(b.first()).toBe(1);
    expect(b.active(1)).toBe(0);
    b.release(1); // never below zero
    expect(b.active(1)).toBe(0);
  });

  test('a backend without endpoints is refused at compile time', () => {
    expect(() => new Balancer({ name: 'empty', endpoints: [], balance: 'round_robin' })).toThrow(/backend 'empty' has no endpoints/);
  });
});
