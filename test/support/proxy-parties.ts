// The parties around a gateway under test, for tests of the whole request path: a test PKI, the
// gateway's server and client certificates, a client certificate (frontend), and the demo
// upstream, which requires mTLS and is expected as SPIFFE ID `echo`.
import { startDemoUpstream, type DemoUpstream } from '../../gateway/demo/demo-upstream.js';
import type { Upstream } from '../../gateway/config/types.js';
import { mtlsUpstream } from './gateway-config.js';
import { id, TestPki, type WrittenCert } from './test-pki.js';

export interface ProxyParties {
  readonly pki: TestPki;
  readonly server: WrittenCert;
  readonly frontend: WrittenCert;
  readonly upstream: DemoUpstream;
  /** Upstream `echo` toward the demo upstream, with the gateway's client certificate. */
  readonly echo: Upstream;
  close(): Promise<void>;
}

export async function startProxyParties(): Promise<ProxyParties> {
  const pki = await TestPki.create();
  const server = await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: ['localhost'], usage: 'server' });
  const gatewayClient = await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' });
  const upstreamCert = await pki.issue('upstream', { spiffeId: id('echo'), dnsNames: ['localhost'], usage: 'server' });
  const frontend = await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' });
  const upstream = await startDemoUpstream({ certPem: upstreamCert.chainPem, keyPem: upstreamCert.keyPem, caPem: pki.ca.rootPem });
  const echo = mtlsUpstream({ name: 'echo', port: upstream.port, cert: gatewayClient.certFile, key: gatewayClient.keyFile, trustBundle: pki.caFile, expectId: id('echo'), connections: 4 });
  return {
    pki,
    server,
    frontend,
    upstream,
    echo,
    async close() {
      await upstream.close();
      pki.cleanup();
    },
  };
}
