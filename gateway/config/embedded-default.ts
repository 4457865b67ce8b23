// The embedded default that `gatehouse start` serves without --config: the demo of DESIGN.md.
// It is YAML like any user config (paths relative to the dev PKI directory), so it goes through
// the same validation, and `gatehouse start --print-default` shows a working starting point.

/** The demo's four loopback ports; `--port-base` moves them (a second demo, a test beside a running one). */
export interface DemoPorts {
  readonly terminate: number;
  readonly passthrough: number;
  readonly admin: number;
  readonly upstream: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { terminate: 8443, passthrough: 9443, admin: 9901, upstream: 9444 };

/** Highest `--port-base`: its four consecutive ports must all be valid. */
/** What `config.source` and problems name when no file was given. */
export const EMBEDDED_SOURCE = '<embedded default>';

export const MAX_PORT_BASE = 65_532;

/** `--port-base P`: terminate on P, passthrough on P+1, admin on P+2, the demo upstream on P+3. */
export function demoPortsFrom(base: number): DemoPorts {
  return { terminate: base, passthrough: base + 1, admin: base + 2, upstream: base + 3 };
}

/**
 * On since branches h2down and h2up (issue 17): the demo's terminate listener offers HTTP/2
 * (`listeners[].tls.alpn: [h2, http/1.1]`, also the default) and its upstream is
 * `upstreams[].protocol: auto`, so `curl --http2` and gRPC work through it.
 * test/demo-http2.test.ts checks the banner's HTTP/2 and gRPC commands.
 */
export const DEMO_SPEAKS_H2 = true;

export function embeddedDefaultYaml(ports: DemoPorts = DEFAULT_DEMO_PORTS, options: { h2?: boolean } = {}): string {
  const h2 = options.h2 ?? DEMO_SPEAKS_H2;
  return `# gatehouse embedded default: a working mTLS demo on loopback.
admin:
  address: 127.0.0.1:${ports.admin}

# One JSON line per request on stdout (the gateway's own log is on stderr).
access_log:
  path: stdout

listeners:
  - name: terminate
    address: 127.0.0.1:${ports.terminate}
    mode: STRICT
    tls:
${h2 ? '      alpn: [h2, http/1.1]          # HTTP/2 (and so gRPC) or HTTP/1.1, as the client prefers\n' : ''}      certificates:
        - cert: gateway-server.crt
          key: gateway-server.key
      client_auth:
        trust_bundle: ca.crt
    routes:
      - name: demo
        match:
          path_prefix: /
        upstream: demo
        authorize:
          allow:
            - trust_domain: gatehouse.dev
        xfcc: sanitize_set

  - name: passthrough
    address: 127.0.0.1:${ports.passthrough}
    routes:
      - name: echo
        passthrough:
          sni: [echo.gatehouse.dev]
        backend: demo-tls

upstreams:
  - name: demo
    endpoints: [127.0.0.1:${ports.upstream}]
${h2 ? '    protocol: auto                  # offer h2 and http/1.1; the demo upstream picks h2\n' : ''}    tls:
      cert: gateway-client.crt
      key: gateway-client.key
      trust_bundle: ca.crt
      server_name: localhost
      expect_id: spiffe://gatehouse.dev/ns/demo/sa/echo

backends:
  - name: demo-tls
    endpoints: [127.0.0.1:${ports.upstream}]
`;
}
