// The configuration of trust domains: client_auth.trust_domains and upstreams[].tls.trust_domains
// (a bundle per SPIFFE trust domain, exclusive with trust_bundle), client_auth.require_spiffe_id,
// the file checks of each bundle, and the warnings `gatehouse validate` prints: one trust_bundle with
// CAs of several organisations behind allow-lists that name several trust domains, an allow-list
// entry no bundle can ever satisfy, a CA listed for two trust domains.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createIntermediateCa, createRootCa, issueLeaf } from '../certs/dev-ca.js';
import { main as validateMain } from '../gateway/commands/validate.js';
import { parseConfig, type ConfigResult } from '../gateway/config/load-config.js';
import { OpensslPki } from './support/openssl-pki.js';

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-td-config-'));
  const write = (name: string, data: string) => fs.writeFileSync(file(name), data);
  const ours = await createRootCa({ commonName: 'Example Root CA', trustDomain: 'example.org' });
  const issuing = await createIntermediateCa(ours, { commonName: 'Example Issuing CA', trustDomain: 'example.org' });
  const server = await issueLeaf(ours, { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', dnsNames: ['api.example.org'], usage: 'server' });
  const client = await issueLeaf(ours, { spiffeId: 'spiffe://example.org/ns/edge/sa/gateway', usage: 'client' });
  write('ours.crt', ours.rootPem);
  write('ours-chain.crt', issuing.certPem + ours.rootPem);
  write('server.crt', server.chainPem);
  write('server.key', server.keyPem);
  write('client.crt', client.chainPem);
  write('client.key', client.keyPem);
  const openssl = OpensslPki.create();
  try {
    const partner = openssl.ca('Partner Root CA');
    write('partner.crt', partner.certPem);
    write('merged.crt', ours.rootPem + partner.certPem);
    write('constrained.crt', openssl.ca('Constrained Root CA', undefined, 'ec', 'partner.example').certPem);
  } finally {
    openssl.cleanup();
  }
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Options {
  clientAuth?: string;
  upstreamTrust?: string;
  expect?: string;
  allow?: string;
}

/** A listener and an upstream; the client_auth block, the upstream's trust lines and the allow-list vary. */
function yaml(o: Options = {}): string {
  return `listeners:
  - name: edge
    address: 127.0.0.1:18443
    tls:
      certificates:
        - cert: server.crt
          key: server.key
      client_auth:
${(o.clientAuth ?? 'trust_domains:\n  example.org: ours.crt\n  partner.example: partner.crt').replace(/^/gm, '        ')}
    routes:
      - name: payments
        match: { path_prefix: / }
        upstream: payments
        authorize:
          allow:
${(o.allow ?? '- spiffe://example.org/ns/web/sa/frontend\n- trust_domain: partner.example').replace(/^/gm, '            ')}
upstreams:
  - name: payments
    endpoints: [127.0.0.1:18500]
    tls:
      cert: client.crt
      key: client.key
${(o.upstreamTrust ?? 'trust_domains:\n  example.org: ours.crt\n  partner.example: partner.crt').replace(/^/gm, '      ')}
${(o.expect ?? 'expect_id: spiffe://example.org/ns/payments/sa/api').replace(/^/gm, '      ')}
`;
}

function load(o: Options, checkFiles = true): ConfigResult & { text: string } {
  const text = yaml(o);
  return { ...parseConfig(text, 'td.yaml', dir, { checkFiles }), text };
}

/** Where `entry` (the `nth` one) sits in the text: its value, or with `key` its key. */
function at(text: string, entry: string, opts: { nth?: number; key?: boolean } = {}): { line: number; col: number } {
  const lines = text.split('\n');
  const hits = lines.flatMap((l, i) => (l.includes(entry) ? [i] : []));
  const i = hits[opts.nth ?? 0];
  if (i === undefined) throw new Error(`no '${entry}' in the configuration`);
  const start = lines[i]!.indexOf(entry);
  const colon = entry.indexOf(': ');
  return { line: i + 1, col: start + 1 + (opts.key || colon === -1 ? 0 : colon + 2) };
}

function problems(result: ConfigResult): { path: string; line: number; col: number; message: string }[] {
  if (result.ok) throw new Error('expected problems, but the configuration is valid');
  return result.problems.map(({ path: p, line, col, message }) => ({ path: p, line, col, message }));
}

const warnings = (result: ConfigResult) => result.warnings.map(({ path: p, line, col, message }) => ({ path: p, line, col, message }));
const CLIENT_AUTH = 'listeners[0].tls.client_auth';

describe('trust_domains', () => {
  it('reads a bundle per trust domain, for listeners and upstreams, with paths resolved and require_spiffe_id on by default', () => {
    const result = load({});
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    const domains = [
      { trustDomain: 'example.org', bundle: file('ours.crt') },
      { trustDomain: 'partner.example', bundle: file('partner.crt') },
    ];
    expect(result.config.listeners[0]!.tls!.clientAuth).toEqual({ trustDomains: domains, crl: undefined, requireSpiffeId: true });
    expect(result.config.upstreams[0]!.tls).toMatchObject({ trustDomains: domains, expectId: 'spiffe://example.org/ns/payments/sa/api' });
    expect(result.config.upstreams[0]!.tls!.trustBundle).toBeUndefined();
    expect(result.warnings).toEqual([]);
  });

  it('is exclusive with trust_bundle: both is an error at trust_domains, neither an error naming both', () => {
    const both = load({ clientAuth: 'trust_bundle: ours.crt\ntrust_domains:\n  example.org: ours.crt', upstreamTrust: 'trust_bundle: ours.crt\ntrust_domains:\n  example.org: ours.crt' }, false);
    expect(problems(both)).toEqual([
      { path: `${CLIENT_AUTH}.trust_domains`, ...at(both.text, 'trust_domains:', { key: true }), message: expect.stringContaining('set trust_bundle or trust_domains, not both') },
      { path: 'upstreams[0].tls.trust_domains', ...at(both.text, 'trust_domains:', { key: true, nth: 1 }), message: expect.stringContaining('set trust_bundle or trust_domains, not both') },
    ]);
    const neither = load({ clientAuth: 'crl: x.crl' }, false);
    expect(problems(neither)).toEqual([
      {
        path: `${CLIENT_AUTH}.trust_bundle`,
        ...at(neither.text, 'crl: x.crl', { key: true }), // a missing key is reported at the map that lacks it
        message: "required key 'trust_bundle' is missing: the CAs that issue the clients' certificates (or trust_domains: a bundle per SPIFFE trust domain)",
      },
    ]);
  });

  it('refuses an empty map, a list, a key that is not a trust domain and a trust domain listed twice, each where it is', () => {
    const empty = load({ clientAuth: 'trust_domains: {}' }, false);
    expect(problems(empty)).toEqual([{ path: `${CLIENT_AUTH}.trust_domains`, ...at(empty.text, 'trust_domains: {}'), message: 'must not be empty' }]);
    const list = load({ clientAuth: 'trust_domains: [ours.crt]' }, false);
    expect(problems(list)[0]).toMatchObject({ path: `${CLIENT_AUTH}.trust_domains`, message: expect.stringMatching(/^expected a mapping, like \{ example.com: ca-example.pem/) });
    const keys = load({ clientAuth: 'trust_domains:\n  Example.org: ours.crt\n  spiffe://partner.example: partner.crt\n  example.org: ours.crt\n  example.org: partner.crt' }, false);
    expect(problems(keys)).toEqual([
      { path: `${CLIENT_AUTH}.trust_domains.Example.org`, ...at(keys.text, 'Example.org:', { key: true }), message: "'Example.org': the trust domain must be lowercase" },
      { path: `${CLIENT_AUTH}.trust_domains.spiffe://partner.example`, ...at(keys.text, 'spiffe://partner.example:', { key: true }), message: expect.stringContaining('without spiffe://') },
      { path: `${CLIENT_AUTH}.trust_domains.example.org`, ...at(keys.text, 'example.org: partner.crt', { key: true }), message: expect.stringContaining("duplicate key 'example.org'") },
    ]);
  });

  it("needs expect_id on an upstream, in a trust domain that has a bundle", () => {
    const missing = load({ expect: 'expect_id: spiffe://elsewhere.example/ns/payments/sa/api' }, false);
    expect(problems(missing)).toEqual([
      {
        path: 'upstreams[0].tls.expect_id',
        ...at(missing.text, 'expect_id: spiffe://elsewhere.example'),
        message: "trust domain 'elsewhere.example' has no bundle in trust_domains (example.org, partner.example): the upstream's certificate could never be verified",
      },
    ]);
    const dns = load({ expect: 'expect_dns: payments.example.org' }, false);
    expect(problems(dns)).toEqual([{ path: 'upstreams[0].tls.expect_dns', ...at(dns.text, 'expect_dns:', { key: true }), message: expect.stringContaining('a DNS name has none') }]);
  });

  it('checks every bundle file at its own field, and refuses a CA with name constraints of its own', () => {
    const result = load({ clientAuth: 'trust_domains:\n  example.org: ours.crt\n  partner.example: missing.crt\n  constrained.example: constrained.crt' });
    expect(problems(result)).toEqual([
      { path: `${CLIENT_AUTH}.trust_domains.partner.example`, ...at(result.text, 'partner.example: missing.crt'), message: `file not found: ${file('missing.crt')}` },
      { path: `${CLIENT_AUTH}.trust_domains.constrained.example`, ...at(result.text, 'constrained.example: constrained.crt'), message: expect.stringContaining('carries name constraints of its own') },
    ]);
  });

  it('warns about an allow-list entry of a trust domain without a bundle, and about a CA listed for two trust domains', () => {
    const result = load({ allow: '- spiffe://example.org/ns/web/sa/frontend\n- spiffe://elsewhere.example/ns/batch/*', clientAuth: 'trust_domains:\n  example.org: ours.crt\n  mirror.example: ours.crt' });
    expect(result.ok).toBe(true);
    expect(warnings(result)).toEqual([
      { path: `${CLIENT_AUTH}.trust_domains.mirror.example`, ...at(result.text, 'mirror.example: ours.crt'), message: expect.stringContaining("is also in the bundle of trust domain 'example.org'") },
      {
        path: 'listeners[0].routes[0].authorize.allow[1]',
        ...at(result.text, 'spiffe://elsewhere.example'),
        message: "trust domain 'elsewhere.example' has no bundle in client_auth.trust_domains (example.org, mirror.example): no client of it can connect, so this entry never matches",
      },
    ]);
  });
});

describe('one trust_bundle for several trust domains', () => {
  it('is warned about when the bundle holds CAs that do not chain to one another and the allow-lists name several trust domains', () => {
    const result = load({ clientAuth: 'trust_bundle: merged.crt' });
    expect(result.ok).toBe(true);
    expect(warnings(result)).toEqual([{ path: `${CLIENT_AUTH}.trust_bundle`, ...at(result.text, 'trust_bundle: merged.crt'), message: expect.stringContaining('holds 2 CAs that do not chain to one another') }]);
    expect(warnings(result)[0]!.message).toContain('name the trust domains example.org, partner.example');
    expect(warnings(result)[0]!.message).toContain('client_auth.trust_domains');
  });

  it('is not warned about for one CA hierarchy (a root and its intermediate), nor for allow-lists of one trust domain', () => {
    expect(warnings(load({ clientAuth: 'trust_bundle: ours-chain.crt' }))).toEqual([]);
    expect(warnings(load({ clientAuth: 'trust_bundle: merged.crt', allow: '- spiffe://example.org/ns/web/sa/frontend\n- spiffe://example.org/ns/batch/*' }))).toEqual([]);
  });

  it('is printed by gatehouse validate as a warning line, with exit code 0', async () => {
    const config = file('merged.yaml');
    fs.writeFileSync(config, yaml({ clientAuth: 'trust_bundle: merged.crt' }));
    let err = '';
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await validateMain(['--config', config])).toBe(0);
    } finally {
      stderr.mockRestore();
      stdout.mockRestore();
    }
    const { line, col } = at(yaml({ clientAuth: 'trust_bundle: merged.crt' }), 'trust_bundle: merged.crt');
    expect(err).toMatch(new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:${col}: ${CLIENT_AUTH.replace(/[[\].]/g, '\\$&')}\\.trust_bundle: warning: .*holds 2 CAs`));
  });
});

describe('require_spiffe_id', () => {
  it('can be turned off with a trust_bundle, and must not be with trust_domains', () => {
    const off = load({ clientAuth: 'trust_bundle: ours.crt\nrequire_spiffe_id: false', upstreamTrust: 'trust_bundle: ours.crt' });
    if (!off.ok) throw new Error(JSON.stringify(off.problems));
    expect(off.config.listeners[0]!.tls!.clientAuth).toEqual({ trustBundle: file('ours.crt'), crl: undefined, requireSpiffeId: false });
    const contradiction = load({ clientAuth: 'trust_domains:\n  example.org: ours.crt\nrequire_spiffe_id: false' }, false);
    expect(problems(contradiction)).toEqual([
      { path: `${CLIENT_AUTH}.require_spiffe_id`, ...at(contradiction.text, 'require_spiffe_id: false'), message: expect.stringContaining('cannot be false with trust_domains') },
    ]);
    const notBool = load({ clientAuth: 'trust_bundle: ours.crt\nrequire_spiffe_id: yes please' }, false);
    expect(problems(notBool)).toEqual([{ path: `${CLIENT_AUTH}.require_spiffe_id`, ...at(notBool.text, 'require_spiffe_id: yes please'), message: 'expected true or false, got "yes please"' }]);
  });
});
