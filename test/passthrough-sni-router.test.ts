// The front door's route table: exact SNI, then a one-label wildcard, then the default; ALPN as
// part of a match; terminate routes claiming their host or the default; lookups by value.
import { describe, expect, test } from 'vitest';
import type { PassthroughRoute, Route } from '../gateway/config/types.js';
import { SniRouter } from '../gateway/passthrough/sni-router.js';
import { allow, terminateRoute } from './support/gateway-config.js';
import { passthroughRoute } from './support/front-door-harness.js';

const terminate = (name: string, host?: string): Route => terminateRoute(name, 'up', allow(), host === undefined ? {} : { match: { host, pathPrefix: '/' } });
const router = (routes: Route[]) => new SniRouter(routes, (route: PassthroughRoute) => route.name);
const name = (result: ReturnType<SniRouter<string>['lookup']>) => (result.kind === 'passthrough' ? result.route : result.kind);

describe('SniRouter', () => {
  const routes = [
    passthroughRoute('exact', 'b', { sni: ['db.example.com', 'DB2.Example.com.'] }),
    passthroughRoute('wild', 'b', { sni: ['*.example.com'] }),
    passthroughRoute('deep-wild', 'b', { sni: ['*.eu.example.com'] }),
    passthroughRoute('fallback', 'b', { default: true }),
  ];
  const table = router(routes);

  test.each([
    ['db.example.com', 'exact'],
    ['db2.example.com', 'exact'], // patterns are normalized like SNI: lowercase, no trailing dot
    ['api.example.com', 'wild'],
    ['x.eu.example.com', 'deep-wild'], // the longest suffix
    ['a.b.example.com', 'fallback'], // a wildcard stands for exactly one label
    ['example.com', 'fallback'],
    ['other.test', 'fallback'],
    [undefined, 'fallback'], // no SNI
  ])('%s → %s', (sni, expected) => {
    expect(name(table.lookup(sni, []))).toBe(expected);
  });

  test('without a default, an unclaimed name finds nothing', () => {
    expect(router([passthroughRoute('exact', 'b', { sni: ['db.example.com'] })]).lookup('x.example.com', [])).toEqual({ kind: 'none' });
    expect(router([]).lookup(undefined, [])).toEqual({ kind: 'none' });
  });

  test('an ALPN entry matches only a client that offered the protocol, before the plain entry of the same name', () => {
    const t = router([
      passthroughRoute('plain', 'b', { sni: ['svc.example.com'] }),
      passthroughRoute('grpc', 'b', { sni: ['svc.example.com'], alpn: 'h2' }),
      passthroughRoute('legacy', 'b', { sni: ['svc.example.com'], alpn: 'http/1.1' }),
    ]);
    expect(name(t.lookup('svc.example.com', ['h2', 'http/1.1']))).toBe('grpc'); // config order among ALPN entries
    expect(name(t.lookup('svc.example.com', ['http/1.1']))).toBe('legacy');
    expect(name(t.lookup('svc.example.com', ['acme-tls/1']))).toBe('plain');
    expect(name(t.lookup('svc.example.com', []))).toBe('plain');
  });

  test('when no entry of a level accepts the ALPN offered, the next level is tried', () => {
    const t = router([passthroughRoute('h2-only', 'b', { sni: ['svc.example.com'], alpn: 'h2' }), passthroughRoute('wild', 'b', { sni: ['*.example.com'] }), passthroughRoute('h2-default', 'b', { default: true, alpn: 'h2' })]);
    expect(name(t.lookup('svc.example.com', ['h2']))).toBe('h2-only');
    expect(name(t.lookup('svc.example.com', ['http/1.1']))).toBe('wild');
    expect(name(t.lookup('other.test', ['h2']))).toBe('h2-default');
    expect(t.lookup('other.test', ['http/1.1'])).toEqual({ kind: 'none' });
  });

  test('terminate routes claim their host, their wildcard, or (without a host) the default', () => {
    const t = router([passthroughRoute('db', 'b', { sni: ['db.example.com'] }), terminate('app', 'app.example.com'), terminate('apps', '*.apps.example.com'), terminate('any')]);
    expect(t.lookup('app.example.com', [])).toEqual({ kind: 'terminate' });
    expect(t.lookup('x.apps.example.com', [])).toEqual({ kind: 'terminate' });
    expect(t.lookup('unknown.test', [])).toEqual({ kind: 'terminate' });
    expect(t.lookup(undefined, [])).toEqual({ kind: 'terminate' });
    expect(name(t.lookup('db.example.com', []))).toBe('db');
    const hostOnly = router([terminate('app', 'app.example.com')]);
    expect(hostOnly.lookup('other.example.com', [])).toEqual({ kind: 'none' });
  });

  test('lookups return the result objects built at compile time (no allocation per connection)', () => {
    expect(table.lookup('db.example.com', [])).toBe(table.lookup('db2.example.com', []));
    expect(table.lookup('a.example.com', [])).toBe(table.lookup('b.example.com', []));
  });

  test('bind runs once per passthrough route, not per name or lookup', () => {
    let binds = 0;
    const t = new SniRouter(routes, (route) => (binds++, route.name));
    for (let i = 0; i < 10; i++) t.lookup('db.example.com', []);
    expect(binds).toBe(routes.length);
  });
});
