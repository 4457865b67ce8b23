// Session ticket keys: the key file format (hex or base64 of exactly 48 bytes, one line), the key
// source (generated and rotated; or read from the file, followed when it changes, the last good key
// kept when it turns bad), and a running gateway taking new keys: old tickets fall back to a full
// handshake, new ones resume, and a certificate reload afterwards keeps the current keys. A key
// handed over by the generation before a restart: kept and rotated on its schedule, unless a key
// file or disabled tickets say otherwise; the line it travels on, refused without quoting it.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { parseTicketKeysLine, ticketKeysLine } from '../gateway/runtime/handed-ticket-keys.js';
import { TicketKeySource, parseTicketKey } from '../gateway/runtime/ticket-keys.js';
import { allow, gatewayConfig, mtlsUpstream, terminateListener, terminateRoute } from './support/gateway-config.js';
import { TestPki, id, type WrittenCert } from './support/test-pki.js';
import { handshake } from './support/tls-session.js';

let pki: TestPki;
beforeAll(async () => {
  pki = await TestPki.create();
});
afterAll(() => pki?.cleanup());

const until = async (what: string, check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('key file format', () => {
  const key = randomBytes(48);
  it.each([
    ['96 hex digits', key.toString('hex')],
    ['upper-case hex with a newline', key.toString('hex').toUpperCase() + '\n'],
    ['base64', key.toString('base64')],
    ['base64 with surrounding whitespace', `  ${key.toString('base64')}\r\n`],
  ])('reads %s', (_name, text) => {
    const parsed = parseTicketKey(text);
    expect(parsed.ok && parsed.key.equals(key)).toBe(true);
  });

  it.each([
    ['empty', '', /empty/],
    ['32 bytes of hex', randomBytes(32).toString('hex'), /64 digits, expected 96/],
    ['80 bytes (an nginx 80-byte key)', randomBytes(80).toString('base64'), /80 bytes, expected 48/],
    ['two lines', `${key.toString('hex')}\n${key.toString('hex')}`, /one line/],
    ['not an encoding', 'this is not a key', /not hex or base64/],
  ])('refuses %s', (_name, text, problem) => {
    const parsed = parseTicketKey(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(problem);
  });
});

describe('TicketKeySource', () => {
  it('generates a 48-byte key and replaces it every rotate period', async () => {
    const source = new TicketKeySource({ enabled: true, rotateMs: 50 });
    try {
      const first = source.current;
      expect(first).toHaveLength(48);
      const seen: Buffer[] = [];
      source.onChange((k) => seen.push(k));
      await until('two rotations', () => seen.length >= 2);
      expect(seen[0]!.equals(first)).toBe(false);
      expect(seen[1]!.equals(seen[0]!)).toBe(false);
      expect(source.current.equals(seen.at(-1)!)).toBe(true);
    } finally {
      source.close();
    }
  });

  it('follows the key file and keeps the last good key when the file turns bad', async () => {
    const file = `${pki.dir}/ticket.key`;
    const k1 = randomBytes(48);
    const k2 = randomBytes(48);
    fs.writeFileSync(file, k1.toString('hex'));
    const source = new TicketKeySource({ enabled: true, rotateMs: 50, keyFile: file }, { debounceMs: 20, pollMs: 50 });
    try {
      expect(source.current.equals(k1)).toBe(true);
      const seen: Buffer[] = [];
      source.onChange((k) => seen.push(k));
      fs.writeFileSync(file, 'truncated');
      await new Promise((r) => setTimeout(r, 300));
      expect(source.current.equals(k1)).toBe(true); // and no rotation either: the file's writer rotates
      fs.writeFileSync(file, k2.toString('base64') + '\n');
      await until('the new key', () => seen.length > 0);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.equals(k2)).toBe(true);
    } finally {
      source.close();
    }
  });

  it('goes on with a handed-over key and rotates it when the generation before would have', async () => {
    const handed = { key: randomBytes(48), ageMs: 900 };
    const source = new TicketKeySource({ enabled: true, rotateMs: 1000 }, { handed });
    try {
      expect(source.current.equals(handed.key)).toBe(true);
      const age = source.handOver()!;
      expect(age.key.equals(handed.key)).toBe(true);
      expect(age.ageMs).toBeGreaterThanOrEqual(900);
      expect(age.ageMs).toBeLessThan(1000);
      const startedAt = Date.now();
      await until('the rotation due 100 ms after start', () => !source.current.equals(handed.key), 700);
      expect(Date.now() - startedAt).toBeLessThan(700); // not a whole period: the key's age counts
      expect(source.handOver()!.ageMs).toBeLessThan(500); // and the new key's age starts at 0
    } finally {
      source.close();
    }
  });

  it('takes no handed-over key with a key file (the file wins) or with tickets disabled, and hands none over disabled', () => {
    const file = `${pki.dir}/wins.key`;
    const fromFile = randomBytes(48);
    fs.writeFileSync(file, fromFile.toString('hex'));
    const handed = { key: randomBytes(48), ageMs: 0 };
    const withFile = new TicketKeySource({ enabled: true, rotateMs: 1000, keyFile: file }, { handed });
    const disabled = new TicketKeySource({ enabled: false, rotateMs: 1000 }, { handed });
    try {
      expect(withFile.current.equals(fromFile)).toBe(true);
      expect(disabled.current.equals(handed.key)).toBe(false);
      expect(disabled.handOver()).toBeUndefined();
      expect(ticketKeysLine(disabled.handOver())).toBeUndefined();
    } finally {
      withFile.close();
      disabled.close();
    }
  });

  it('refuses to start with an unusable key file, naming the field and file', () => {
    const file = `${pki.dir}/short.key`;
    fs.writeFileSync(file, randomBytes(16).toString('hex'));
    expect(() => new TicketKeySource({ enabled: true, rotateMs: 1000, keyFile: file })).toThrow(`session_tickets.key_file: ${file}: hex key has 32 digits, expected 96`);
  });
});

describe('the line a handover passes the key on', () => {
  const key = randomBytes(48);
  it('carries the key and its age', () => {
    const parsed = parseTicketKeysLine(ticketKeysLine({ key, ageMs: 1234 })!);
    expect(parsed.ok && parsed.key.key.equals(key) && parsed.key.ageMs).toBe(1234);
  });

  it.each([
    ['not JSON, unquoted', `ticket_key=${key.toString('hex')}`, 'not JSON'],
    ['not an object', '42', 'not a JSON object'],
    ['no key', '{"age_ms":1}', 'ticket_key: not a string'],
    ['a short key, unquoted', `{"ticket_key":"${key.toString('hex').slice(2)}","age_ms":1}`, 'ticket_key: hex key has 94 digits, expected 96'],
    ['a negative age', `{"ticket_key":"${key.toString('hex')}","age_ms":-1}`, 'age_ms: not a whole number of milliseconds'],
  ])('refuses %s', (_name, line, problem) => {
    const parsed = parseTicketKeysLine(line);
    expect(parsed).toEqual({ ok: false, problem });
  });
});

describe('a running gateway given new ticket keys', () => {
  let gateway: RunningGateway;
  let server: WrittenCert;
  let client: WrittenCert;
  beforeAll(async () => {
    server = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    client = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
    const upstreamClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
    const listener = terminateListener({ cert: server.certFile, key: server.keyFile, trustBundle: pki.caFile, routes: [terminateRoute('all', 'origin', allow(id('frontend')))] });
    const upstream = mtlsUpstream({ name: 'origin', port: 1, cert: upstreamClient.certFile, key: upstreamClient.keyFile, trustBundle: pki.caFile });
    gateway = await startGateway(gatewayConfig([listener], [upstream]), { ticketKeys: randomBytes(48), admin: false });
  });
  afterAll(() => gateway?.close());

  it('resumes only tickets of the current keys, also after a certificate reload', async () => {
    const port = gateway.listeners.get('public')!.address().port;
    const connect = (session?: Buffer) => handshake({ port, ca: pki.ca.rootPem, cert: client, session, ticketWaitMs: session ? 20 : 300 });
    const old = (await connect()).session!;
    expect((await connect(old)).reused).toBe(true);

    gateway.setTicketKeys(randomBytes(48));
    expect((await connect(old)).reused).toBe(false); // a full handshake, not an error
    const current = (await connect()).session!;
    expect((await connect(current)).reused).toBe(true);

    // A renewed certificate: the reload builds new contexts, which must carry the current keys.
    await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
    const outcomes = await gateway.lifecycle.reloadAll();
    expect(outcomes.map((o) => o.kind)).toContain('applied');
    const after = await connect(current);
    expect(after.reused).toBe(true);
  });
});
