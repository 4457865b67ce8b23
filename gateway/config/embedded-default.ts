// The embedded default that `gatehouse start` serves without --config: the demo of DESIGN.md.
// It is YAML like any user config (paths relative to the dev PKI directory), so it goes through
// the same validation, and `gatehouse start --print-default` shows a working starting point.

export const DEMO_UPSTREAM_PORT = 9444;

export const EMBEDDED_DEFAULT_YAML = `# gatehouse embedded default: a working mTLS demo on loopback.
admin:
  address: 127.0.0.1:9901

listeners:
  - name: terminate
    address: 127.0.0.1:8443
    mode: STRICT
    tls:
      certificates:
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
    address: 127.0.0.1:9443
    routes:
      - name: echo
        passthrough:
          sni: [echo.gatehouse.dev]
        backend: demo-tls

upstreams:
  - name: demo
    endpoints: [127.0.0.1:${DEMO_UPSTREAM_PORT}]
    tls:
      cert: gateway-client.crt
      key: gateway-client.key
      trust_bundle: ca.crt
      server_name: localhost
      expect_id: spiffe://gatehouse.dev/ns/demo/sa/echo

backends:
  - name: demo-tls
    endpoints: [127.0.0.1:${DEMO_UPSTREAM_PORT}]
`;
