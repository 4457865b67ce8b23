// The embedded demo over HTTP/2 and gRPC, as a new user tries it: the banner of `gatehouse start`
// prints `curl --http2` and `gatehouse grpc-health` commands that work as printed. The demo offers
// HTTP/2 once the gateway speaks it on both sides (issue 17's branches h2down and h2up) and the
// switch in embedded-default.ts is on; until then only the checks of that switch run.
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEMO_PORTS, DEMO_SPEAKS_H2, EMBEDDED_SOURCE, embeddedDefaultYaml } from '../gateway/config/embedded-default.js';
import { formatProblem, parseConfig } from '../gateway/config/load-config.js';
import { runCommand, startEmbeddedDemo, type EmbeddedDemo } from './support/gatehouse-cli.js';
import { gatewaySpeaksH2 } from './support/gateway-h2-probe.js';

describe('the switch that makes the embedded demo offer HTTP/2', () => {
  it('is on exactly when the gateway speaks HTTP/2 (integrator: set DEMO_SPEAKS_H2 in embedded-default.ts at the merge)', () => {
    expect(DEMO_SPEAKS_H2).toBe(gatewaySpeaksH2);
  });

  it('adds exactly the two HTTP/2 keys: the listener offers h2, the upstream is protocol: auto', () => {
    const added = (a: string, b: string) => b.split('\n').filter((line) => !a.split('\n').includes(line));
    const http1 = embeddedDefaultYaml(DEFAULT_DEMO_PORTS, { h2: false });
    const h2 = embeddedDefaultYaml(DEFAULT_DEMO_PORTS, { h2: true });
    expect(added(h2, http1)).toEqual([]);
    expect(added(http1, h2).map((line) => line.replace(/\s+#.*/, ''))).toEqual(['      alpn: [h2, http/1.1]', '    protocol: auto']);
  });

  it.skipIf(!gatewaySpeaksH2)('gives a valid configuration once the gateway speaks HTTP/2', () => {
    const result = parseConfig(embeddedDefaultYaml(DEFAULT_DEMO_PORTS, { h2: true }), EMBEDDED_SOURCE, os.tmpdir(), { checkFiles: false });
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([]);
  });
});

describe.skipIf(!DEMO_SPEAKS_H2)('gatehouse start (the embedded demo, on --port-base ports): its HTTP/2 and gRPC commands work as printed', () => {
  let demo: EmbeddedDemo | undefined;

  beforeAll(async () => {
    demo = await startEmbeddedDemo(' grpc-health ');
  }, 30_000);

  afterAll(async () => {
    await demo?.stop();
  });

  /** The printed command whose line contains `marker`, split into arguments. */
  function printed(marker: string): string[] {
    const line = demo!.banner().split('\n').find((l) => l.includes(marker));
    expect(line, `a banner line with '${marker}'`).toBeDefined();
    return line!.trim().split(/\s+/);
  }

  it('curl --http2 through the gateway: HTTP/2 from curl to the gateway and from the gateway to the demo upstream', async () => {
    const result = await runCommand([...printed('curl --http2'), '-sS', '-w', '\n%{http_version}'], { cwd: demo!.cwd });
    expect(result.stderr).toBe('');
    const cut = result.stdout.lastIndexOf('\n');
    expect(result.stdout.slice(cut + 1)).toBe('2');
    const seen = JSON.parse(result.stdout.slice(0, cut));
    expect(seen.httpVersion).toBe('2.0');
    expect(seen.headers['x-forwarded-client-cert']).toContain('URI=spiffe://gatehouse.dev/ns/demo/sa/client');
  });

  it('the gRPC health check through the gateway prints SERVING', async () => {
    expect(await runCommand(printed(' grpc-health '), { cwd: demo!.cwd })).toMatchObject({ code: 0, stdout: 'SERVING\n' });
  });
});
