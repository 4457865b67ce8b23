// What a configuration reload does to upstream clusters, on a gateway in this process: a cluster
// whose upstream settings did not change is kept with its open connections; a changed one is built
// anew (its certificate reloader with it) and the old one closes its connections once idle; a
// reload that fails to build changes nothing.
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../gateway/config/types.js';
import { upstreamPool } from '../gateway/metrics/proxy-metrics.js';
import { ReloadRefused, startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { backend, passthroughRoute } from './support/front-door-harness.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { listenerPort, startProxyParties, type ProxyParties } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

let parties: ProxyParties;
let gateway: RunningGateway | undefined;
let agent: https.Agent | undefined;

beforeAll(async () => {
  parties = await startProxyParties();
}, 30_000);
afterAll(() => parties?.close());
afterEach(async () => {
  agent?.destroy();
  await gateway?.close();
  gateway = undefined;
});

function config(opts: { allowed?: string; connections?: number; upstreamCert?: string } = {}): GatewayConfig {
  const echo = { ...parties.echo, connections: opts.connections ?? parties.echo.connections };
  const upstream = opts.upstreamCert ? { ...echo, tls: { ...echo.tls!, cert: opts.upstreamCert } } : echo;
  return gatewayConfig([parties.certs.listener([terminateRoute('all', 'echo', allow(opts.allowed ?? id('frontend')))])], [upstream]);
}

/** GET / on one keep-alive connection (the agent's); resolves with the status. */
function get(port: number): Promise<number> {
  agent ??= new https.Agent({ keepAlive: true, maxSockets: 1 });
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername: 'localhost', headers: { host: 'localhost' }, agent, ca: parties.pki.ca.rootPem, cert: parties.frontend.chainPem, key: parties.frontend.keyPem },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function start(c: GatewayConfig): Promise<{ g: RunningGateway; port: number }> {
  const g = (gateway = await startGateway(c, { admin: false, lifecycle: { debounceMs: 100, pollMs: 0, tickMs: 1000 } }));
  return { g, port: listenerPort(g) };
}

describe('reloading upstreams', () => {
  it('keeps a cluster whose settings did not change, with its open connection, when only an allow-list changes', async () => {
    const { g, port } = await start(config());
    expect(await get(port)).toBe(200);
    const cluster = g.clusters.get('echo')!;
    expect(cluster.stats().connected).toBe(1);
    await g.reload(config({ allowed: id('someone-else') }));
    expect(g.clusters.get('echo')).toBe(cluster);
    expect(cluster.stats().connected, 'the pooled upstream connection is still open').toBe(1);
    expect(await get(port)).toBe(403);
  });

  it('builds a changed upstream anew, with its own certificate reloader, and closes the old cluster\'s idle connections', async () => {
    const { g, port } = await start(config());
    expect(await get(port)).toBe(200);
    const old = g.clusters.get('echo')!;
    const oldReloader = g.lifecycle.reloaders.get('upstream/echo');
    expect(oldReloader).toBeDefined();
    await g.reload(config({ connections: 3 }));
    const rebuilt = g.clusters.get('echo')!;
    expect(rebuilt).not.toBe(old);
    expect(rebuilt.config.connections).toBe(3);
    expect(g.lifecycle.reloaders.get('upstream/echo')).not.toBe(oldReloader);
    expect(g.config.upstreams[0]!.connections).toBe(3);
    for (let i = 0; i < 50 && old.stats().connected > 0; i++) await sleep(20);
    expect(old.stats().connected, 'the retired cluster closed its idle connection').toBe(0);
    expect(await get(port)).toBe(200);
    expect(rebuilt.stats().connected).toBe(1);
  });

  it('leaves no pool gauges behind for an upstream the new configuration no longer has', async () => {
    const { g, port } = await start(config());
    expect(await get(port)).toBe(200);
    g.refreshGauges();
    const echoSeries = async () => (await upstreamPool.get()).values.filter((v) => v.labels.upstream === 'echo').length;
    expect(await echoSeries()).toBe(6); // connected, free, pending, running, h2_sessions, h2_streams
    const renamed = { ...parties.echo, name: 'echo2' };
    await g.reload(gatewayConfig([parties.certs.listener([terminateRoute('all', 'echo2', allow(id('frontend')))])], [renamed]));
    g.refreshGauges();
    expect(await echoSeries()).toBe(0);
    expect(await get(port)).toBe(200);
  });

  it('changes nothing when a changed upstream cannot be built (its certificate file is missing)', async () => {
    const { g, port } = await start(config());
    expect(await get(port)).toBe(200);
    const cluster = g.clusters.get('echo')!;
    const before = g.config;
    await expect(g.reload(config({ allowed: id('someone-else'), upstreamCert: `${parties.pki.dir}/missing.crt` }))).rejects.toThrow(/upstreams\[0\]\.tls.*missing\.crt/);
    expect(g.config).toBe(before);
    expect(g.clusters.get('echo')).toBe(cluster);
    expect(await get(port), 'the allow-list of the failed reload was not applied').toBe(200);
  });

  it('gives a listener added by a reload its certificate reloader, and closes the reloader of one removed', async () => {
    const { g } = await start(config());
    const one = config();
    const two = { ...one, listeners: [...one.listeners, { ...one.listeners[0]!, name: 'second' }] };
    await g.reload(two);
    expect([...g.lifecycle.reloaders.keys()].sort()).toEqual(['listener/public', 'listener/second', 'upstream/echo']);
    expect(await get(listenerPort(g, 'second'))).toBe(200);
    await g.reload(one);
    expect([...g.lifecycle.reloaders.keys()].sort()).toEqual(['listener/public', 'upstream/echo']);
    expect([...g.listeners.keys()]).toEqual(['public']);
  });

  it('gives a front door the new passthrough routes and backends: a new SNI is relayed from the next connection on', async () => {
    const withPassthrough = (sni: string, backendName: string) => {
      const c = config();
      const listener = { ...c.listeners[0]!, routes: [...c.listeners[0]!.routes, passthroughRoute('relay', backendName, { sni: [sni] })] };
      return { ...c, listeners: [listener], backends: [backend(backendName, [parties.upstream.port])] };
    };
    const { g, port } = await start(withPassthrough('one.test', 'echo-tls'));
    const origin = new X509Certificate(parties.certs.origin.certPem).fingerprint256;
    const peerOf = async (servername: string) => {
      const socket = tls.connect({ port, host: '127.0.0.1', servername, ca: parties.pki.ca.rootPem, cert: parties.frontend.chainPem, key: parties.frontend.keyPem, checkServerIdentity: () => undefined });
      try {
        await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        return socket.getPeerX509Certificate()?.fingerprint256;
      } catch {
        return undefined;
      } finally {
        socket.destroy();
      }
    };
    expect(await peerOf('one.test')).toBe(origin);
    expect(await peerOf('two.test')).not.toBe(origin);
    await g.reload(withPassthrough('two.test', 'echo-tls-2'));
    expect(await peerOf('two.test'), 'relayed to the backend, which presents its own certificate').toBe(origin);
    expect(await peerOf('one.test')).not.toBe(origin);
  });

  it('refuses, as needing a restart, a listener whose limits changed', async () => {
    const { g } = await start(config());
    const next = config();
    const changed = { ...next, listeners: [{ ...next.listeners[0]!, maxConnections: 5 }] };
    await expect(g.reload(changed)).rejects.toThrow(ReloadRefused);
    await expect(g.reload(changed)).rejects.toThrow('listener public changed (maxConnections) on the same address: needs a restart');
  });
});
