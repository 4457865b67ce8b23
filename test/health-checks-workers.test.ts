// Active health checks with workers (`gatehouse start --workers 2`, the compiled CLI): the checks
// are shared, not multiplied — the endpoints see about one check per interval in all, not one per
// worker — and every worker takes an endpoint out when its checks fail: no request through any
// worker reaches it, and the primary's /upstreams says so.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliFixture, freePort, startCli, stopCli, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { request } from './support/mtls-client.js';
import { id } from './support/test-pki.js';

const INTERVAL_MS = 200;
const children = new Set<ChildProcess>();
let fixture: CliFixture;
let gateway: CliGateway;

/** A plaintext origin that counts its health checks and requests; `healthStatus` is what /healthz answers. */
interface CountingOrigin {
  readonly port: number;
  checks: number;
  requests: number;
  healthStatus: number;
  close(): Promise<void>;
}

async function countingOrigin(name: string): Promise<CountingOrigin> {
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      origin.checks++;
      res.writeHead(origin.healthStatus).end('hc');
      return;
    }
    origin.requests++;
    res.end(`${name}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin: CountingOrigin = {
    port: (server.address() as AddressInfo).port,
    checks: 0,
    requests: 0,
    healthStatus: 200,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return origin;
}

let steady: CountingOrigin;
let failing: CountingOrigin;
let port: number;
let adminPort: number;

beforeAll(async () => {
  fixture = await cliFixture(children);
  steady = await countingOrigin('steady');
  failing = await countingOrigin('failing');
  port = await freePort();
  adminPort = await freePort();
  const file = path.join(fixture.pki.dir, 'health-workers.yaml');
  fs.writeFileSync(
    file,
    `workers: 2
admin:
  address: 127.0.0.1:${adminPort}
lifecycle:
  watch: false
listeners:
  - name: public
    address: 127.0.0.1:${port}
    tls:
      certificates:
        - cert: ${fixture.server.certFile}
          key: ${fixture.server.keyFile}
      client_auth:
        trust_bundle: ${fixture.pki.caFile}
    routes:
      - name: all
        match:
          path_prefix: /
        upstream: origin
        authorize:
          allow: [${id('frontend')}]
upstreams:
  - name: origin
    endpoints: [127.0.0.1:${steady.port}, 127.0.0.1:${failing.port}]
    outlier_detection:
      max_ejection_percent: 0
    health_check:
      path: /healthz
      interval: ${INTERVAL_MS}ms
      timeout: ${INTERVAL_MS}ms
      unhealthy_threshold: 2
      healthy_threshold: 2
`,
  );
  gateway = await startCli({ file, port, adminPort }, [], children);
}, 40_000);

afterAll(async () => {
  if (gateway) await stopCli(gateway, children);
  await steady?.close();
  await failing?.close();
  await fixture?.close();
});

const upstreamsPage = async () => (await (await fetch(`http://127.0.0.1:${adminPort}/upstreams`)).json()) as { origin: { endpoints: Array<{ endpoint: string; healthy: boolean }> } };

describe('health checks with two workers', () => {
  it('check each endpoint about once per interval in all, not once per worker', async () => {
    const start = steady.checks;
    const WINDOW_MS = 3000;
    await sleep(WINDOW_MS);
    const checks = steady.checks - start;
    const perInterval = WINDOW_MS / INTERVAL_MS; // 15
    // Two workers each checking every interval would make ~30.
    expect(checks).toBeGreaterThanOrEqual(perInterval * 0.6);
    expect(checks).toBeLessThanOrEqual(perInterval * 1.35);
  });

  it('take a failing endpoint out in every worker: no request reaches it, /upstreams says unhealthy', async () => {
    failing.healthStatus = 503;
    const failingEndpoint = `127.0.0.1:${failing.port}`;
    const deadline = Date.now() + 5000;
    while ((await upstreamsPage()).origin.endpoints.find((e) => e.endpoint === failingEndpoint)!.healthy) {
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(50);
    }
    const before = failing.requests;
    // A new connection each: the kernel spreads them over both workers.
    for (let i = 0; i < 16; i++) {
      const res = await request({ port, ca: fixture.pki.ca.rootPem, cert: fixture.client, path: `/r${i}` });
      expect(res.status).toBe(200);
      expect(res.body).toBe('steady\n');
    }
    expect(failing.requests).toBe(before);
  });
});
