// The pieces behind terminate-request-hygiene.test.ts, where a table says more than a round trip:
// path normalization rule by rule, header-name classification (case, '_', prefixes, precedence),
// and the route keys that configure them, refused at the exact field when wrong.
import { describe, expect, it } from 'vitest';
import { parseConfig, type ConfigResult } from '../gateway/config/load-config.js';
import { HeaderNameTable } from '../gateway/message/header-name-table.js';
import { ALLOW_DOUBLE_ENCODING, ALLOW_PATH_PARAMETERS, hasDoubleEncoding, normalizePath, withoutPathParameters } from '../gateway/terminate/request-path.js';

const result = (path: string, allow = 0, merge = true) => {
  const out = normalizePath(path, allow, merge);
  return typeof out === 'string' ? out : `refused: ${out.rule}`;
};

describe('normalizePath', () => {
  it.each([
    ['/', '/'],
    ['/a/b/c.json', '/a/b/c.json'],
    ['/a/', '/a/'],
    ['/%61%62%63', '/abc'],
    ['/%7e%2D%2e%5F', '/~-._'],
    ['/%c3%A9', '/%C3%A9'],
    ['/a%3Bb', '/a%3Bb'],
    ['//a//b//', '/a/b/'],
    ['/a/...', '/a/...'],
    ['/a/.b/..c', '/a/.b/..c'],
    ['/%2e', 'refused: dot_segment'],
    ['/.', 'refused: dot_segment'],
    ['/..', 'refused: dot_segment'],
    ['/a/./', 'refused: dot_segment'],
    ['/a/%2E%2e/', 'refused: dot_segment'],
    ['/a/..;x', 'refused: dot_segment'],
    ['/a;x/..;y/b', 'refused: dot_segment'],
    ['/a;x', 'refused: path_parameters'],
    ['/%2561', 'refused: double_encoding'],
    ['/%25', '/%25'],
    ['/%25zz', '/%25zz'],
    ['/%2F', 'refused: encoded_separator'],
    ['/%5c', 'refused: encoded_separator'],
    ['/\\', 'refused: backslash'],
    ['/%1f', 'refused: encoded_control'],
    ['/%7F', 'refused: encoded_control'],
    ['/%', 'refused: bad_percent_encoding'],
    ['/%g1', 'refused: bad_percent_encoding'],
    ['/a#b', 'refused: fragment'],
    ['', 'refused: not_origin_form'],
    ['a/b', 'refused: not_origin_form'],
  ])('%s -> %s', (path, expected) => {
    expect(result(path)).toBe(expected);
  });

  it('keeps a path that needs no rewriting as the same string', () => {
    for (const path of ['/', '/api/v1/orders/42', '/a.b/c-d_e~f', '/x/y.']) expect(normalizePath(path, 0)).toBe(path);
  });

  it('lets a route allow path parameters and double encoding, and keep slashes', () => {
    expect(result('/a;x/b', ALLOW_PATH_PARAMETERS)).toBe('/a;x/b');
    expect(result('/a;x/%2561', ALLOW_PATH_PARAMETERS)).toBe('refused: double_encoding');
    expect(result('/%2561', ALLOW_DOUBLE_ENCODING)).toBe('/%2561');
    expect(result('/a//b/%61', 0, false)).toBe('/a//b/a');
    expect(result('//', 0, false)).toBe('//');
  });

  it('reads paths as upstreams that drop ; parameters do', () => {
    expect(withoutPathParameters('/a;x/b;y=1,2')).toBe('/a/b');
    expect(withoutPathParameters('/;x/admin')).toBe('/admin');
    expect(withoutPathParameters('/a/;x;y/;z/b')).toBe('/a/b');
    expect(hasDoubleEncoding('/a%2561')).toBe(true);
    expect(hasDoubleEncoding('/a%25z1/%25')).toBe(false);
  });
});

describe('HeaderNameTable', () => {
  const table = new HeaderNameTable([
    { name: 'x-forwarded-for', kind: 1 },
    { name: 'x-forwarded-for', kind: 2, underscoreAsHyphen: true },
    { name: 'x-ssl-client-', kind: 3, prefix: true, underscoreAsHyphen: true },
    { name: 'te', kind: 4 },
  ]);

  it.each([
    ['x-forwarded-for', 1],
    ['X-Forwarded-FOR', 1],
    ['X_Forwarded_For', 2],
    ['x-forwarded-fo', 0],
    ['x-forwarded-forx', 0],
    ['X-SSL-Client-Verify', 3],
    ['x_ssl_client_s_dn', 3],
    ['x-ssl-client-', 3],
    ['x-ssl-client', 0],
    ['x-ssl-clients', 0],
    ['TE', 4],
    ['Te', 4],
    ['t_', 0],
    ['', 0],
    ['a-very-long-header-name-that-no-entry-has', 0],
  ])('%s is kind %i', (name, kind) => {
    expect(table.kindOf(name)).toBe(kind);
  });

  it('refuses entries that could never match', () => {
    expect(() => new HeaderNameTable([{ name: 'X-Upper', kind: 1 }])).toThrow(/lowercase/);
    expect(() => new HeaderNameTable([{ name: 'x', kind: 0 }])).toThrow(/kind/);
  });
});

describe('route keys', () => {
  const config = (route: string) =>
    parseConfig(
      [
        'listeners:',
        '  - name: public',
        '    address: 127.0.0.1:1',
        '    tls:',
        '      certificates: [{cert: a.crt, key: a.key}]',
        '      client_auth: {trust_bundle: ca.crt}',
        '    routes:',
        '      - name: r',
        '        upstream: u',
        '        authorize: {allow: [spiffe://example.org/ns/a/sa/b]}',
        ...route.split('\n').map((line) => `        ${line}`),
        'upstreams:',
        '  - name: u',
        '    endpoints: [127.0.0.1:2]',
        '',
      ].join('\n'),
      'routes.yaml',
      '/nonexistent',
      { checkFiles: false },
    );
  const problems = (r: ConfigResult) => (r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`));

  it('reads them with their defaults', () => {
    const defaults = config('match: {path_prefix: /a}');
    if (!defaults.ok) throw new Error(problems(defaults).join('\n'));
    expect(defaults.config.listeners[0]!.routes[0]).toMatchObject({
      match: { pathPrefix: '/a', caseInsensitive: false },
      stripHeaders: [],
      trustClientIdentityHeaders: false,
      mergeSlashes: true,
      allowPathParameters: false,
      allowDoubleEncoding: false,
    });
    const set = config(
      'match: {path_prefix: /a, case_insensitive: true}\nstrip_headers: [X-Internal-User, "x-debug-*"]\ntrust_client_identity_headers: true\nmerge_slashes: false\nallow_path_parameters: true\nallow_double_encoding: true',
    );
    if (!set.ok) throw new Error(problems(set).join('\n'));
    expect(set.config.listeners[0]!.routes[0]).toMatchObject({
      match: { caseInsensitive: true },
      stripHeaders: ['x-internal-user', 'x-debug-*'],
      trustClientIdentityHeaders: true,
      mergeSlashes: false,
      allowPathParameters: true,
      allowDoubleEncoding: true,
    });
  });

  it.each([
    ['match: {path_prefix: /a//b}', '11:30 listeners[0].routes[0].match.path_prefix', "write '/a/b'"],
    ['match: {path_prefix: /%61pi}', '11:30 listeners[0].routes[0].match.path_prefix', "write 'a'"],
    ['match: {path_prefix: /caf%c3%a9}', '11:30 listeners[0].routes[0].match.path_prefix', 'write %C3'],
    ['match: {path_prefix: /a/../b}', '11:30 listeners[0].routes[0].match.path_prefix', "'..' segment"],
    ['match: {path_prefix: /a;v=1}', '11:30 listeners[0].routes[0].match.path_prefix', "';' parameters"],
    ['match: {path_prefix: /, case_insensitive: 1}', '11:51 listeners[0].routes[0].match.case_insensitive', 'expected true or false'],
    ['match: {path_prefix: /}\nstrip_headers: [x-ok, "x bad"]', '12:31 listeners[0].routes[0].strip_headers[1]', 'is not a header name'],
    ['match: {path_prefix: /}\nstrip_headers: [Host]', '12:25 listeners[0].routes[0].strip_headers[0]', 'read or set by the gateway'],
    ['match: {path_prefix: /}\nstrip_headers: [x-forwarded-client-cert]', '12:25 listeners[0].routes[0].strip_headers[0]', "route's xfcc mode"],
    ['match: {path_prefix: /}\ntrust_client_identity_headers: yes please', '12:40 listeners[0].routes[0].trust_client_identity_headers', 'expected true or false'],
    ['match: {path_prefix: /}\nallow_path_parameter: true', '12:9 listeners[0].routes[0].allow_path_parameter', 'allow_path_parameters'],
  ])('refuses %s at the field', (route, at, message) => {
    const found = problems(config(route));
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(at);
    expect(found[0]).toContain(message);
  });
});
