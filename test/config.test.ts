// The configuration loader and `gatehouse validate`: every problem is reported at the exact
// field (path, line, column), all of them in one pass; a valid file yields a frozen config with
// the documented defaults; file checks run on real certificates minted by certs/dev-ca.ts.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main as certsMain } from '../certs/certs-command.js';
import { createCrl, createRootCa, issueLeaf, type LeafOptions } from '../certs/dev-ca.js';
import { main as validateMain } from '../gateway/commands/validate.js';
import { parseAddress, parseByteSize, parseDuration, parseHostPattern, parseIdentityPattern } from '../gateway/config/config-values.js';
import { loadConfigFile, parseConfig, type ConfigResult, type LoadOptions } from '../gateway/config/load-config.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/config/', import.meta.url));
const DAY_MS = 24 * 3600_000;

/** Where the test's certificates, keys and CRLs live; fixtures' relative paths resolve here. */
let certDir: string;

beforeAll(async () => {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-config-'));
  const write = (name: string, data: string | Buffer) => fs.writeFileSync(path.join(certDir, name), data);
  const ca = await createRootCa({ commonName: 'Config Test CA', trustDomain: 'example.org' });
  const leaf = async (name: string, opts: LeafOptions) => {
    const issued = await issueLeaf(ca, opts);
    write(`${name}.crt`, issued.chainPem);
    write(`${name}.key`, issued.keyPem);
  };
  write('ca.crt', ca.rootPem);
  write('ca.crl', await createCrl(ca, []));
  write('garbage.crl', 'not a certificate revocation list\n');
  // Raw key bytes, not PEM; the first byte is that of a DER SEQUENCE, so a PEM check would trip on it.
  write('ticket-keys', Buffer.concat([Buffer.from([0x30]), randomBytes(47)]));
  await leaf('server', { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', dnsNames: ['api.example.org'], usage: 'server' });
  await leaf('default', { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', usage: 'server' });
  await leaf('client', { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', usage: 'client' });
  await leaf('other', { spiffeId: 'spiffe://example.org/ns/edge/sa/other' });
  await leaf('server-only', { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', usage: 'server' });
  await leaf('expired', { dnsNames: ['old.example.org'], usage: 'server', notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
});

afterAll(() => {
  fs.rmSync(certDir, { recursive: true, force: true });
});

function parseFixture(name: string, options: LoadOptions = { checkFiles: false }): ConfigResult {
  return parseConfig(fs.readFileSync(path.join(FIXTURES, name), 'utf8'), name, certDir, options);
}

interface Where {
  readonly path: string;
  readonly line: number;
  readonly col: number;
}

/** The problems' positions in file order (ties by path), or a failure naming the config as valid. */
function positions(result: ConfigResult): Where[] {
  if (result.ok) throw new Error('expected problems, but the configuration is valid');
  return result.problems.map(({ path, line, col }) => ({ path, line, col })).sort((a, b) => a.line - b.line || a.col - b.col || a.path.localeCompare(b.path));
}

function messageAt(result: ConfigResult, at: string): string {
  const problem = result.ok ? undefined : result.problems.find((p) => p.path === at);
  if (!problem) throw new Error(`no problem at ${at}`);
  return problem.message;
}

const w = (path: string, line: number, col: number): Where => ({ path, line, col });

/** A terminate listener and one upstream `u` (line 17 is its endpoints), with `extra` lines appended to the upstream. */
const oneUpstream = (extra: string) =>
  `listeners:\n  - name: web\n    address: 127.0.0.1:1\n    tls:\n      certificates:\n        - cert: a.crt\n          key: a.key\n      client_auth:\n        trust_bundle: ca.crt\n    routes:\n      - name: r\n        match: { path_prefix: / }\n        upstream: u\n        authorize: { allow: [spiffe://example.org/a] }\nupstreams:\n  - name: u\n    endpoints: [127.0.0.1:2]\n${extra}`;

describe('schema problems point at the exact node', () => {
  const scenarios: { fixture: string; behaviour: string; problems: Where[] }[] = [
    {
      fixture: 'unknown-keys.yaml',
      behaviour: 'unknown keys at the key; a missing required key at the map that lacks it',
      problems: [
        w('listeners[0].adress', 4, 5),
        w('listeners[0].tls.client_auth.trust_bundel', 11, 9),
        w('listeners[0].tls.client_auth.trust_bundle', 11, 9),
        w('listeners[0].routes[0].match.pathPrefix', 15, 11),
        w('upstreams[0].colour', 22, 5),
      ],
    },
    {
      fixture: 'wrong-types.yaml',
      behaviour: 'values of the wrong type at the value',
      problems: [
        w('workers', 2, 10),
        w('lifecycle.watch', 4, 10),
        w('listeners[0].address', 7, 14),
        w('listeners[0].max_connections', 8, 22),
        w('listeners[0].routes', 10, 7),
        w('upstreams', 11, 12),
      ],
    },
    {
      fixture: 'bad-durations.yaml',
      behaviour: 'durations without a unit, of zero, or with an unknown unit',
      problems: [
        w('listeners[0].timeouts.hello', 6, 14),
        w('listeners[0].timeouts.handshake', 7, 18),
        w('listeners[0].timeouts.idle', 8, 13),
        w('backends[0].connect_timeout', 17, 22),
      ],
    },
    {
      fixture: 'bad-sizes.yaml',
      behaviour: 'body sizes without a unit, negative, fractional bytes; max_request_body on a passthrough route',
      problems: [
        w('listeners[0].max_request_body', 4, 23),
        w('listeners[0].timeouts.request_body', 6, 21),
        w('listeners[0].routes[0].max_request_body', 14, 27),
        w('listeners[0].routes[1]', 17, 9),
        w('listeners[1].max_request_body', 22, 23),
      ],
    },
    {
      fixture: 'bad-addresses.yaml',
      behaviour: 'addresses without a port, with a port out of range, IPv6 without brackets, a bad IPv4 address',
      problems: [
        w('admin.address', 3, 12),
        w('listeners[0].address', 6, 14),
        w('listeners[1].address', 12, 14),
        w('backends[0].endpoints[2]', 19, 47),
        w('backends[0].endpoints[3]', 19, 63),
      ],
    },
    {
      fixture: 'missing-references.yaml',
      behaviour: 'a route naming an upstream or backend that does not exist',
      problems: [w('listeners[0].routes[0].upstream', 14, 19), w('listeners[0].routes[1].backend', 18, 18)],
    },
    {
      fixture: 'duplicate-names.yaml',
      behaviour: 'duplicate names (routes per listener) and overlapping listener addresses, at the later one',
      problems: [w('listeners[0].routes[1].name', 9, 15), w('listeners[1].name', 12, 11), w('listeners[1].address', 13, 14), w('backends[1].name', 21, 11)],
    },
    {
      fixture: 'bad-spiffe-ids.yaml',
      behaviour: 'SPIFFE IDs that break the SPIFFE spec',
      problems: [
        ...[18, 19, 20, 21, 22, 23, 24, 25, 26, 27].map((line, i) => w(`listeners[0].routes[0].authorize.allow[${i + 1}]`, line, 15)),
        w('listeners[0].routes[0].authorize.allow[11].trust_domain', 28, 29),
        w('upstreams[0].tls.expect_id', 36, 18),
      ],
    },
    {
      fixture: 'yaml-syntax.yaml',
      behaviour: 'a YAML syntax error, alone (nothing else is checked in a broken document)',
      problems: [w('', 5, 1), w('', 6, 1)],
    },
    {
      fixture: 'route-rules.yaml',
      behaviour: 'rules: terminate needs tls, one default certificate, allow_plaintext only PERMISSIVE, one default route, terminate or passthrough, expect_id or expect_dns',
      problems: [
        w('listeners[0].tls', 3, 5),
        w('listeners[1].tls.certificates[1]', 16, 11),
        w('listeners[1].routes[0].authorize.allow_plaintext', 26, 28),
        w('listeners[1].routes[1].passthrough.default', 28, 32),
        w('listeners[1].routes[2]', 30, 9),
        w('upstreams[0].tls.expect_id', 38, 7),
        w('upstreams[1].tls.expect_dns', 48, 7),
      ],
    },
    {
      fixture: 'structure.yaml',
      behaviour: 'a duplicate key at the key; missing required keys at their map',
      problems: [w('listeners[0].address', 3, 5), w('listeners[0].name', 4, 5), w('backends[0].name', 10, 5)],
    },
  ];

  it.each(scenarios)('$fixture: $behaviour', ({ fixture, problems }) => {
    expect(positions(parseFixture(fixture))).toEqual(problems);
  });

  it('hints at the key that was meant, and only when one is close', () => {
    const result = parseFixture('unknown-keys.yaml');
    expect(messageAt(result, 'listeners[0].adress')).toContain("did you mean 'address'?");
    expect(messageAt(result, 'listeners[0].tls.client_auth.trust_bundel')).toContain("did you mean 'trust_bundle'?");
    expect(messageAt(result, 'listeners[0].routes[0].match.pathPrefix')).toContain("did you mean 'path_prefix'?");
    expect(messageAt(result, 'upstreams[0].colour')).not.toContain('did you mean');
  });

  it('names the missing upstream or backend and lists the ones that exist', () => {
    const result = parseFixture('missing-references.yaml');
    const upstream = messageAt(result, 'listeners[0].routes[0].upstream');
    for (const name of ['paymnts', 'payments', 'billing']) expect(upstream).toContain(name);
    expect(messageAt(result, 'listeners[0].routes[1].backend')).toMatch(/postgres.*no backends/);
  });

  it('reports an empty file at its first line', () => {
    expect(positions(parseConfig('', 'empty.yaml', certDir))).toEqual([w('', 1, 1)]);
  });

  it('refuses session_tickets.per_handshake outside 1..8 or not a whole number, at the value', () => {
    const listener = 'listeners:\n  - name: relay\n    address: 127.0.0.1:1\n    routes:\n      - name: r\n        passthrough:\n          sni: [a.example.org]\n        backend: b\nbackends:\n  - name: b\n    endpoints: [127.0.0.1:2]\n';
    for (const [value, message] of [['0', '0 is out of range (1 to 8)'], ['9', '9 is out of range (1 to 8)'], ['two', 'expected a whole number, got "two"']] as const) {
      const result = parseConfig(`session_tickets:\n  per_handshake: ${value}\n${listener}`, 'tickets.yaml', certDir, { checkFiles: false });
      expect(positions(result)).toEqual([w('session_tickets.per_handshake', 2, 18)]);
      expect(messageAt(result, 'session_tickets.per_handshake')).toContain(message);
    }
  });

  it('reads drain (delay 0s and timeout 30s by default), refuses a timeout of 0 and a delay as long as the timeout, at the value', () => {
    const listener = 'listeners:\n  - name: relay\n    address: 127.0.0.1:1\n    routes:\n      - name: r\n        passthrough:\n          sni: [a.example.org]\n        backend: b\nbackends:\n  - name: b\n    endpoints: [127.0.0.1:2]\n';
    const read = (drain: string) => parseConfig(`${drain}${listener}`, 'drain.yaml', certDir, { checkFiles: false });
    const absent = read('');
    expect(absent.ok && absent.config.drain).toEqual({ delayMs: 0, timeoutMs: 30_000 });
    const set = read('drain:\n  delay: 5s\n  timeout: 1m\n');
    expect(set.ok && set.config.drain).toEqual({ delayMs: 5_000, timeoutMs: 60_000 });
    const noDelay = read('drain:\n  delay: 0s\n');
    expect(noDelay.ok && noDelay.config.drain).toEqual({ delayMs: 0, timeoutMs: 30_000 });
    const zeroTimeout = read('drain:\n  timeout: 0s\n');
    expect(positions(zeroTimeout)).toEqual([w('drain.timeout', 2, 12)]);
    expect(messageAt(zeroTimeout, 'drain.timeout')).toContain('must be longer than 0');
    const tooLong = read('drain:\n  delay: 30s\n');
    expect(positions(tooLong)).toEqual([w('drain.delay', 2, 10)]);
    expect(messageAt(tooLong, 'drain.delay')).toContain('must be shorter than drain.timeout (30000 ms)');
  });

  it('reads listeners[].max_connections_per_source (absent: no limit) and refuses a value below 1 at the value', () => {
    const listener = (extra: string) => `listeners:\n  - name: relay\n    address: 127.0.0.1:1\n${extra}    routes:\n      - name: r\n        passthrough:\n          sni: [a.example.org]\n        backend: b\nbackends:\n  - name: b\n    endpoints: [127.0.0.1:2]\n`;
    const read = (extra: string) => parseConfig(listener(extra), 'limits.yaml', certDir, { checkFiles: false });
    const set = read('    max_connections_per_source: 50\n');
    expect(set.ok && set.config.listeners[0]!.maxConnectionsPerSource).toBe(50);
    const absent = read('');
    expect(absent.ok && absent.config.listeners[0]!.maxConnectionsPerSource).toBeUndefined();
    const zero = read('    max_connections_per_source: 0\n');
    expect(positions(zero)).toEqual([w('listeners[0].max_connections_per_source', 4, 33)]);
    expect(messageAt(zero, 'listeners[0].max_connections_per_source')).toContain('0 is out of range (1 to 1000000)');
  });

  it('reads upstreams[].limits.max_pending (absent: 1024) and refuses a value below 1 at the value', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'pending.yaml', certDir, { checkFiles: false });
    const set = read('    limits:\n      max_pending: 7\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.upstreams[0]!.limits).toEqual({ maxPending: 7, maxConcurrentStreams: 100 });
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.limits).toEqual({ maxPending: 1024, maxConcurrentStreams: 100 });
    const zero = read('    limits:\n      max_pending: 0\n');
    expect(positions(zero)).toEqual([w('upstreams[0].limits.max_pending', 19, 20)]);
    expect(messageAt(zero, 'upstreams[0].limits.max_pending')).toContain('0 is out of range (1 to 1000000)');
  });

  it('reads upstreams[].balance (absent: round_robin) and refuses a policy it does not know at the value', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'balance.yaml', certDir, { checkFiles: false });
    const set = read('    balance: least_request\n');
    expect(set.ok && set.config.upstreams[0]!.balance).toBe('least_request');
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.balance).toBe('round_robin');
    const unknown = read('    balance: least_connections\n');
    expect(positions(unknown)).toEqual([w('upstreams[0].balance', 18, 14)]);
  });

  it('reads upstreams[].protocol (absent: http1) and limits.max_concurrent_streams (absent: 100), refusing others at the value', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'protocol.yaml', certDir, { checkFiles: false });
    const set = read('    protocol: h2\n    limits:\n      max_concurrent_streams: 250\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect([set.config.upstreams[0]!.protocol, set.config.upstreams[0]!.limits?.maxConcurrentStreams]).toEqual(['h2', 250]);
    expect(read('    protocol: auto\n').ok).toBe(true);
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.protocol).toBe('http1');
    const unknown = read('    protocol: http2\n');
    expect(positions(unknown)).toEqual([w('upstreams[0].protocol', 18, 15)]);
    expect(messageAt(unknown, 'upstreams[0].protocol')).toMatch(/http1.*h2.*auto/);
    const zero = read('    limits:\n      max_concurrent_streams: 0\n');
    expect(positions(zero)).toEqual([w('upstreams[0].limits.max_concurrent_streams', 19, 31)]);
  });

  it('reads upstreams[].outlier_detection (absent: 5 failures, 30s, 50%) and refuses a share over 100 at the value', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'outliers.yaml', certDir, { checkFiles: false });
    const set = read('    outlier_detection:\n      consecutive_failures: 3\n      base_ejection: 500ms\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.upstreams[0]!.outlierDetection).toEqual({ consecutiveFailures: 3, baseEjectionMs: 500, maxEjectionPercent: 50 });
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.outlierDetection).toEqual({ consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50 });
    const over = read('    outlier_detection:\n      max_ejection_percent: 101\n');
    expect(positions(over)).toEqual([w('upstreams[0].outlier_detection.max_ejection_percent', 19, 29)]);
    expect(messageAt(over, 'upstreams[0].outlier_detection.max_ejection_percent')).toContain('101 is out of range (0 to 100)');
  });

  it('reads upstreams[].retries (absent: none; attempts 2, on connect_failure/reset/502/503/504, budget 20%, 64 KiB kept) and refuses an unknown cause at the item', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'retries.yaml', certDir, { checkFiles: false });
    const set = read('    retries:\n      attempts: 1\n      on: [reset, 503]\n      per_try_timeout: 2s\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.upstreams[0]!.retries).toEqual({ attempts: 1, on: ['reset', 503], perTryTimeoutMs: 2000, budgetPercent: 20, maxBufferedBody: 65536 });
    const defaults = read('    retries: {}\n');
    expect(defaults.ok && defaults.config.upstreams[0]!.retries).toEqual({ attempts: 2, on: ['connect_failure', 'reset', 502, 503, 504], perTryTimeoutMs: 0, budgetPercent: 20, maxBufferedBody: 65536 });
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.retries).toBeUndefined();
    const unknown = read('    retries:\n      on: [reset, 404, timeout]\n');
    expect(positions(unknown).map((p) => p.path)).toEqual(['upstreams[0].retries.on[1]', 'upstreams[0].retries.on[2]']);
    expect(messageAt(unknown, 'upstreams[0].retries.on[1]')).toContain('404 is out of range (500 to 599)');
  });

  it('reads upstreams[].dns_refresh (absent: 30s) and dns_resolvers (addresses), refusing a resolver without a port at the item', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'dns.yaml', certDir, { checkFiles: false });
    const set = read('    dns_refresh: 5s\n    dns_resolvers: [127.0.0.1:5353]\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.upstreams[0]).toMatchObject({ dnsRefreshMs: 5000, dnsResolvers: [{ host: '127.0.0.1', port: 5353 }] });
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]).toMatchObject({ dnsRefreshMs: 30_000 });
    expect(absent.ok && absent.config.upstreams[0]!.dnsResolvers).toBeUndefined();
    const noPort = read('    dns_resolvers: [10.0.0.2]\n');
    expect(positions(noPort).map((p) => p.path)).toEqual(['upstreams[0].dns_resolvers[0]']);
  });

  it('reads access_log (absent: none; path stdout, sample 1) and refuses a sample outside (0, 1] at the value', () => {
    const read = (head: string) => parseConfig(head + oneUpstream(''), 'access.yaml', certDir, { checkFiles: false });
    const set = read('access_log:\n  path: logs/access.log\n  sample: 0.25\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.accessLog).toEqual({ path: path.join(certDir, 'logs/access.log'), sample: 0.25 });
    const defaults = read('access_log: {}\n');
    expect(defaults.ok && defaults.config.accessLog).toEqual({ path: 'stdout', sample: 1 });
    const absent = read('');
    expect(absent.ok && absent.config.accessLog).toBeUndefined();
    const zero = read('access_log:\n  sample: 0\n');
    expect(positions(zero)).toEqual([w('access_log.sample', 2, 11)]);
  });

  it('refuses routes[].grpc: true toward an upstream that speaks HTTP/1.1, at the route\'s grpc key; h2 and auto pass', () => {
    const read = (protocol: string) =>
      parseConfig(oneUpstream(protocol).replace('        upstream: u\n', '        upstream: u\n        grpc: true\n'), 'grpc.yaml', certDir, { checkFiles: false });
    const http1 = read('');
    expect(positions(http1)).toEqual([w('listeners[0].routes[0].grpc', 14, 15)]);
    expect(messageAt(http1, 'listeners[0].routes[0].grpc')).toContain("upstream 'u' speaks HTTP/1.1");
    expect(read('    protocol: h2\n').ok).toBe(true);
    expect(read('    protocol: auto\n').ok).toBe(true);
  });

  it('reads upstreams[].health_check (absent: no checks; path required; 5s, 1s, 3, 2, 200-399) and refuses a bad range or a timeout over the interval at the value', () => {
    const read = (extra: string) => parseConfig(oneUpstream(extra), 'health.yaml', certDir, { checkFiles: false });
    const set = read('    health_check:\n      path: /healthz\n      interval: 2s\n      expect_status: 204\n');
    if (!set.ok) throw new Error(set.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    expect(set.config.upstreams[0]!.healthCheck).toEqual({ path: '/healthz', intervalMs: 2000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2, expectStatus: { min: 204, max: 204 } });
    const absent = read('');
    expect(absent.ok && absent.config.upstreams[0]!.healthCheck).toBeUndefined();
    const range = read('    health_check:\n      path: /healthz\n      expect_status: 399-200\n');
    expect(positions(range)).toEqual([w('upstreams[0].health_check.expect_status', 20, 22)]);
    expect(messageAt(range, 'upstreams[0].health_check.expect_status')).toContain('starts above its end');
    const slow = read('    health_check:\n      path: /healthz\n      interval: 1s\n      timeout: 2s\n');
    expect(positions(slow)).toEqual([w('upstreams[0].health_check.timeout', 21, 16)]);
    expect(messageAt(slow, 'upstreams[0].health_check.timeout')).toContain('must not be longer than the interval');
    const noPath = read('    health_check:\n      interval: 1s\n');
    expect(positions(noPath).map((p) => p.path)).toEqual(['upstreams[0].health_check.path']);
  });
});

describe('a valid configuration', () => {
  it('applies the documented defaults, resolves paths against the base directory and checks its files', () => {
    const result = parseFixture('valid-full.yaml', {});
    if (!result.ok) throw new Error(result.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`).join('\n'));
    const file = (name: string) => path.join(certDir, name);
    const { config } = result;
    expect(config.source).toBe('valid-full.yaml');
    expect(config.workers).toBe(2);
    expect(config.admin).toEqual({ address: { host: '127.0.0.1', port: 19901 } });
    expect(config.lifecycle).toEqual({ watch: true, closeRevokedConnections: true, staleCrl: 'reject_all', expiryWarningFraction: 0.2 });
    expect(config.sessionTickets).toEqual({ enabled: true, keyFile: file('ticket-keys'), rotateMs: 30 * 60_000, perHandshake: 1 });
    expect(config.listeners[0]).toEqual({
      name: 'public',
      address: { host: '127.0.0.1', port: 18443 },
      mode: 'STRICT',
      maxConnections: 10_000,
      maxRequestBodyBytes: 64 * 1024 * 1024,
      limits: { maxConcurrentStreams: 100, maxHeaderBytes: 16 * 1024 },
      timeouts: { helloMs: 5_000, handshakeMs: 10_000, idleMs: 120_000, requestHeadersMs: 30_000, requestBodyMs: 30_000 },
      tls: {
        certificates: [
          { sni: ['api.example.org', '*.api.example.org'], cert: file('server.crt'), key: file('server.key') },
          { sni: [], cert: file('default.crt'), key: file('default.key') },
        ],
        clientAuth: { trustBundle: file('ca.crt'), crl: file('ca.crl'), requireSpiffeId: true },
        minVersion: 'TLSv1.2',
        alpn: ['h2', 'http/1.1'],
      },
      routes: [
        {
          kind: 'terminate',
          name: 'payments',
          match: { host: 'api.example.org', pathPrefix: '/payments', caseInsensitive: false },
          upstream: 'payments',
          authorization: {
            allow: [
              { kind: 'exact', id: 'spiffe://example.org/ns/web/sa/frontend' },
              { kind: 'prefix', prefix: 'spiffe://example.org/ns/batch/' },
              { kind: 'trust_domain', trustDomain: 'partner.example' },
            ],
            allowPlaintext: false,
          },
          xfcc: 'append_forward',
          xfccDetails: { subject: false, uri: true, dns: false, cert: true, chain: false },
          maxRequestBodyBytes: 512 * 1024,
          stripHeaders: [],
          trustClientIdentityHeaders: false,
          trustRequestId: false,
          grpc: false,
          mergeSlashes: true,
          allowPathParameters: false,
          allowDoubleEncoding: false,
        },
        { kind: 'passthrough', name: 'db', sni: ['db.example.org'], default: false, alpn: 'postgresql', backend: 'db' },
      ],
    });
    const internal = config.listeners[1]!;
    expect(internal.address).toEqual({ host: '::1', port: 18444 });
    expect(internal.mode).toBe('PERMISSIVE');
    expect(internal.maxRequestBodyBytes).toBe(1_048_576);
    expect(internal.timeouts.requestBodyMs).toBe(5_000);
    expect(internal.routes[0]).toMatchObject({ maxRequestBodyBytes: Infinity });
    expect(internal.routes[0]).toMatchObject({ match: { pathPrefix: '/healthz' }, authorization: { allow: [], allowPlaintext: true }, xfcc: 'sanitize_set' });
    expect(internal.routes[0]).toMatchObject({ xfccDetails: { subject: true, uri: true, dns: true, cert: false, chain: false } });
    expect(config.upstreams).toEqual([
      {
        name: 'payments',
        endpoints: [
          { host: '127.0.0.1', port: 18500 },
          { host: 'localhost', port: 18501 },
        ],
        connections: 64,
        timeouts: { connectMs: 1_500, headersMs: 30_000, idleMs: 60_000, bodyMs: 60_000 },
        balance: 'round_robin',
        limits: { maxPending: 1024, maxConcurrentStreams: 100 },
        outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionPercent: 50 },
        dnsRefreshMs: 30_000,
        protocol: 'http1',
        tls: { cert: file('client.crt'), key: file('client.key'), trustBundle: file('ca.crt'), serverName: 'payments.internal', expectId: 'spiffe://example.org/ns/payments/sa/api' },
      },
    ]);
    expect(config.backends).toEqual([{ name: 'db', endpoints: [{ host: '127.0.0.1', port: 15432 }], balance: 'round_robin', proxyProtocol: 'v1', connectTimeoutMs: 5_000 }]);
  });

  it('is deep-frozen', () => {
    const result = parseFixture('valid-full.yaml');
    if (!result.ok) throw new Error('expected a valid configuration');
    const unfrozen: string[] = [];
    const walk = (value: unknown, at: string) => {
      if (value === null || typeof value !== 'object') return;
      if (!Object.isFrozen(value)) unfrozen.push(at);
      for (const [key, child] of Object.entries(value)) walk(child, `${at}.${key}`);
    };
    walk(result.config, 'config');
    expect(unfrozen).toEqual([]);
    const route = result.config.listeners[0]!.routes[0] as { name: string };
    expect(() => {
      route.name = 'changed';
    }).toThrow(TypeError);
  });
});

describe('file checks', () => {
  it('report a key that does not match its certificate, an expired certificate, missing and unparsable files, a wrong usage', () => {
    const result = parseFixture('files.yaml', {});
    expect(positions(result)).toEqual([
      w('listeners[0].tls.certificates[0].key', 8, 16),
      w('listeners[0].tls.certificates[1].cert', 10, 17),
      w('listeners[0].tls.client_auth.trust_bundle', 13, 23),
      w('listeners[0].tls.client_auth.crl', 14, 14),
      w('upstreams[0].tls.cert', 24, 13),
    ]);
    // The file each problem is about, resolved against the base directory.
    expect(messageAt(result, 'listeners[0].tls.certificates[0].key')).toContain(path.join(certDir, 'server.crt'));
    expect(messageAt(result, 'listeners[0].tls.client_auth.trust_bundle')).toContain(path.join(certDir, 'missing-ca.crt'));
  });

  it('pass for the same schema problems-free file once its files are right', () => {
    const text = fs
      .readFileSync(path.join(FIXTURES, 'files.yaml'), 'utf8')
      .replace('other.key', 'server.key')
      .replace('expired.crt', 'default.crt')
      .replace('expired.key', 'default.key')
      .replace('missing-ca.crt', 'ca.crt')
      .replace('garbage.crl', 'ca.crl')
      .replace('server-only.crt', 'client.crt')
      .replace('server-only.key', 'client.key');
    const result = parseConfig(text, 'files.yaml', certDir);
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('can be skipped, for a pure schema check', () => {
    expect(parseFixture('files.yaml', { checkFiles: false }).ok).toBe(true);
  });
});

describe('the example configurations in routes/', () => {
  const reference = 'routes/reference.yaml';

  it('reference.yaml passes the schema and fails the file check exactly on the files it names, none of which exist', () => {
    expect(loadConfigFile(reference, { checkFiles: false })).toMatchObject({ ok: true });
    const text = fs.readFileSync(reference, 'utf8').split('\n');
    /** Where the `nth` `key: value` entry is in the reference, so that this test survives edits of its comments. */
    const at = (fieldPath: string, entry: string, nth = 0): Where => {
      const lines = text.flatMap((l, i) => (l.includes(entry) ? [i] : []));
      const line = lines[nth];
      if (line === undefined) throw new Error(`routes/reference.yaml has no entry '${entry}' #${nth + 1}`);
      return w(fieldPath, line + 1, text[line]!.indexOf(entry) + entry.indexOf(': ') + 3);
    };
    const result = loadConfigFile(reference);
    expect(positions(result)).toEqual([
      at('listeners[0].tls.certificates[0].cert', 'cert: ../certs/example/api.crt'),
      at('listeners[0].tls.certificates[0].key', 'key: ../certs/example/api.key'),
      at('listeners[0].tls.certificates[1].cert', 'cert: ../certs/example/default.crt'),
      at('listeners[0].tls.certificates[1].key', 'key: ../certs/example/default.key'),
      at('listeners[0].tls.client_auth.trust_domains.example.com', 'example.com: ../certs/example/ca.crt'),
      at('listeners[0].tls.client_auth.trust_domains.partner.example', 'partner.example: ../certs/example/partner-ca.crt'),
      at('listeners[0].tls.client_auth.crl', 'crl: ../certs/example/ca.crl'),
      at('upstreams[0].tls.cert', 'cert: ../certs/example/gateway-client.crt'),
      at('upstreams[0].tls.key', 'key: ../certs/example/gateway-client.key'),
      at('upstreams[0].tls.trust_bundle', 'trust_bundle: ../certs/example/ca.crt', 1), // the first is the listener's, commented out
      at('upstreams[0].tls.crl', 'crl: ../certs/example/ca.crl', 1),
    ]);
    expect(messageAt(result, 'listeners[0].tls.certificates[0].cert')).toContain(path.resolve('certs/example/api.crt'));
  });

  it('passthrough-example.yaml is valid as it is (it names no files)', () => {
    expect(loadConfigFile('routes/passthrough-example.yaml')).toMatchObject({ ok: true, warnings: [] });
  });

  it('terminate-example.yaml is valid once the gatehouse certs commands in its header have made its files', async () => {
    const example = 'routes/terminate-example.yaml';
    const text = fs.readFileSync(example, 'utf8');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-example-'));
    try {
      const commands = [...text.matchAll(/^#\s+gatehouse certs (.+)$/gm)].map((m) => m[1]!.split(/\s+/));
      expect(commands.length).toBe(3);
      const quiet = { out: () => {}, err: (s: string) => void process.stderr.write(s) };
      for (const argv of commands) {
        // The commands are written for the repository root; run them against a scratch copy of it.
        const code = await certsMain(
          argv.map((arg) => (arg.startsWith('.gatehouse/') ? path.join(root, arg) : arg)),
          quiet,
        );
        expect(code, argv.join(' ')).toBe(0);
      }
      const result = parseConfig(text, example, path.join(root, 'routes'));
      expect(result.ok ? [] : result.problems).toEqual([]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('value formats', () => {
  it.each([
    ['500ms', 500],
    ['5s', 5_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
  ])('duration %s is %i ms', (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });

  it.each(['5', '5 s', '1d', 's', '-1s', '0.0001s', ''])('duration %j is refused', (text) => {
    expect(parseDuration(text).ok).toBe(false);
  });

  it.each([
    ['64MiB', 64 * 1024 * 1024],
    ['512KiB', 512 * 1024],
    ['10MB', 10_000_000],
    ['1 GiB', 1024 ** 3],
    ['1.5KiB', 1536],
    ['0B', 0],
    ['unlimited', Infinity],
  ])('size %s is %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toEqual({ ok: true, value: bytes });
  });

  it.each(['64', '64mib', '64 MiBs', '-1MiB', '0.1B', 'MiB', 'Unlimited', ''])('size %j is refused', (text) => {
    expect(parseByteSize(text).ok).toBe(false);
  });

  it.each([
    ['127.0.0.1:8443', { host: '127.0.0.1', port: 8443 }],
    ['[::1]:8443', { host: '::1', port: 8443 }],
    ['Gateway.Internal:1', { host: 'gateway.internal', port: 1 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
  ])('address %s', (text, address) => {
    expect(parseAddress(text)).toEqual({ ok: true, value: address });
  });

  it.each(['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:8443', '[::1]8443', '[nope]:1', ':8443', '256.0.0.1:1', 'a..b:1', 'host:port'])(
    'address %j is refused',
    (text) => {
      expect(parseAddress(text).ok).toBe(false);
    },
  );

  it('server names: lowercased, a wildcard only as the whole first label, IP addresses only where a Host header may hold one', () => {
    const sni = { wildcard: true, ip: false };
    expect(parseHostPattern('*.API.example.org', sni)).toEqual({ ok: true, value: '*.api.example.org' });
    expect(parseHostPattern('10.0.0.1', { wildcard: true, ip: true })).toEqual({ ok: true, value: '10.0.0.1' });
    for (const bad of ['10.0.0.1', '::1', 'api.*.org', '*api.example.org', 'a..b', '-a.example.org', 'a.example.org.']) {
      expect(parseHostPattern(bad, sni).ok, bad).toBe(false);
    }
    expect(parseHostPattern('*.example.org', { wildcard: false, ip: false }).ok).toBe(false);
  });

  it.each([
    ['spiffe://example.org/ns/web/sa/frontend', { kind: 'exact', id: 'spiffe://example.org/ns/web/sa/frontend' }],
    ['spiffe://example.org/ns/batch/*', { kind: 'prefix', prefix: 'spiffe://example.org/ns/batch/' }],
    ['spiffe://example.org/*', { kind: 'prefix', prefix: 'spiffe://example.org/' }],
  ])('allow-list entry %s', (text, pattern) => {
    expect(parseIdentityPattern(text)).toEqual({ ok: true, value: pattern });
  });
});

describe('gatehouse validate', () => {
  async function validate(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
    try {
      return { code: await validateMain(argv), out, err };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }

  const LINE = /^(.+?):(\d+):(\d+): (\S+): (.+)$/;

  it('exits 0 and prints a summary for a valid file', async () => {
    expect(await validate('--config', 'routes/passthrough-example.yaml')).toEqual({
      code: 0,
      out: 'routes/passthrough-example.yaml: ok (1 listener, 3 routes, 0 upstreams)\n',
      err: '',
    });
  });

  it('exits 1 with one FILE:LINE:COL: path: problem line per problem on stderr', async () => {
    const file = 'test/fixtures/config/bad-durations.yaml';
    const { code, out, err } = await validate('--config', file);
    expect({ code, out }).toEqual({ code: 1, out: '' });
    const lines = err.trimEnd().split('\n');
    const parsed = lines.map((line) => {
      const m = LINE.exec(line);
      if (!m) throw new Error(`not FILE:LINE:COL: path: problem: ${line}`);
      return { file: m[1], ...w(m[4]!, Number(m[2]), Number(m[3])) };
    });
    expect(parsed).toEqual(
      [w('listeners[0].timeouts.hello', 6, 14), w('listeners[0].timeouts.handshake', 7, 18), w('listeners[0].timeouts.idle', 8, 13), w('backends[0].connect_timeout', 17, 22)].map(
        (p) => ({ file, ...p }),
      ),
    );
  });

  it('exits 1 for the reference (its files do not exist) and 0 for it with --schema-only', async () => {
    const full = await validate('--config', 'routes/reference.yaml');
    expect(full.code).toBe(1);
    expect(full.err.trimEnd().split('\n')).toHaveLength(11);
    for (const line of full.err.trimEnd().split('\n')) expect(line).toMatch(LINE);
    expect(await validate('--config', 'routes/reference.yaml', '--schema-only')).toEqual({
      code: 0,
      out: 'routes/reference.yaml: ok (1 listener, 3 routes, 1 upstream)\n',
      err: '',
    });
  });

  it('exits 1 naming a config file that does not exist', async () => {
    expect(await validate('--config', 'test/fixtures/config/no-such.yaml')).toEqual({ code: 1, out: '', err: 'test/fixtures/config/no-such.yaml: file not found\n' });
  });

  it.each([[[]], [['--config']], [['--config', 'x.yaml', '--frobnicate']], [['x.yaml']]])('exits 2 with a one-line usage error for %j', async (argv) => {
    const { code, out, err } = await validate(...argv);
    expect({ code, out }).toEqual({ code: 2, out: '' });
    expect(err).toMatch(/^gatehouse validate: [^\n]+usage: gatehouse validate --config FILE[^\n]*\n$/);
  });

  it('--help prints the usage and exits 0', async () => {
    const { code, out, err } = await validate('--help');
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out).toContain('usage: gatehouse validate --config FILE');
  });
});
