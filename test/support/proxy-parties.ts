// The parties around a gateway under test, for tests of the whole request path: a test PKI, the
// gateway's server and client certificates, an upstream's server certificate (origin) and a client
// certificate (frontend); the listener and upstream config that use them; and, for tests that need
// no upstream of their own, the demo upstream, which requires mTLS and is expected as `echo`.
import type { TerminateRoute, Upstream, Listener } from '../../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../../gateway/demo/demo-upstream.js';
import type { RunningGateway } from '../../gateway/runtime/gateway.js';
import { mtlsUpstream, terminateListener } from './gateway-config.js';
import { id, TestPki, type WrittenCert } from './test-pki.js';

export class ProxyCerts {
  private constructor(
    readonly pki: TestPki,
    /** The gateway's server certificate (SPIFFE ID `gateway`). */
    readonly server: WrittenCert,
    /** The gateway's client certificate toward its upstreams (SPIFFE ID `gateway`). */
    readonly gatewayClient: WrittenCert,
    /** An upstream's server certificate for localhost, with SPIFFE ID `originId`. */
    readonly origin: WrittenCert,
    readonly originId: string,
    /** A client certificate (SPIFFE ID `frontend`). */
    readonly frontend: WrittenCert,
  ) {}

  /** `server` names the gateway's server certificate (default localhost); `origin` is the upstream's SPIFFE name (default `origin`). */
  static async issue(opts: { serverDnsNames?: string[]; serverIpAddresses?: string[]; origin?: string } = {}): Promise<ProxyCerts> {
    const pki = await TestPki.create();
    const originId = id(opts.origin ?? 'origin');
    return new ProxyCerts(
      pki,
      await pki.issue('gateway-server', { spiffeId: id('gateway'), dnsNames: opts.serverDnsNames ?? ['localhost'], ipAddresses: opts.serverIpAddresses, usage: 'server' }),
      await pki.issue('gateway-client', { spiffeId: id('gateway'), usage: 'client' }),
      await pki.issue('origin', { spiffeId: originId, dnsNames: ['localhost'], usage: 'server' }),
      originId,
      await pki.issue('frontend', { spiffeId: id('frontend'), usage: 'client' }),
    );
  }

  /** A terminate listener (default name `public`) with the gateway's server certificate, trusting the test CA (or `trustBundle`). */
  listener(routes: TerminateRoute[], extra: { name?: string; trustBundle?: string } = {}): Listener {
    return terminateListener({ name: extra.name, cert: this.server.certFile, key: this.server.keyFile, trustBundle: extra.trustBundle ?? this.pki.caFile, routes });
  }

  /** An upstream reached with the gateway's client certificate, expected to be `origin`. */
  upstream(name: string, port: number, extra: { connections?: number; ports?: number[] } = {}): Upstream {
    return mtlsUpstream({ name, port, cert: this.gatewayClient.certFile, key: this.gatewayClient.keyFile, trustBundle: this.pki.caFile, expectId: this.originId, ...extra });
  }
}

/** The port a started gateway's listener is bound to. */
export function listenerPort(gateway: RunningGateway, listener = 'public'): number {
  return gateway.listeners.get(listener)!.address().port;
}

export interface ProxyParties {
  /** The certificates, with the listener and upstream config that use them. */
  readonly certs: ProxyCerts;
  readonly pki: TestPki;
  readonly frontend: WrittenCert;
  readonly upstream: DemoUpstream;
  /** Upstream `echo` toward the demo upstream, with the gateway's client certificate. */
  readonly echo: Upstream;
  close(): Promise<void>;
}

export async function startProxyParties(): Promise<ProxyParties> {
  const certs = await ProxyCerts.issue({ origin: 'echo' });
  const { pki, frontend, origin } = certs;
  const upstream = await startDemoUpstream({ certPem: origin.chainPem, keyPem: origin.keyPem, caPem: pki.ca.rootPem });
  const echo = certs.upstream('echo', upstream.port, { connections: 4 });
  return {
    certs,
    pki,
    frontend,
    upstream,
    echo,
    async close() {
      await upstream.close();
      pki.cleanup();
    },
  };
}
