// Whether this build's gateway speaks HTTP/2 on both sides (issue 17's branches h2down and h2up):
// its validation takes a listener offering h2 and an upstream with `protocol: h2`. Suites that
// need both are declared with describe.skipIf(!gatewaySpeaksH2) and run unchanged once they land.
import os from 'node:os';
import { parseConfig, type ConfigResult } from '../../gateway/config/load-config.js';

/** The probe's configuration; `h2: false` leaves out the two HTTP/2 keys (the rest must stay valid, or the probe lies). */
export function h2ProbeYaml(h2 = true): string {
  return `listeners:
  - name: probe
    address: 127.0.0.1:18443
    tls:
${h2 ? '      alpn: [h2, http/1.1]\n' : ''}      certificates:
        - cert: server.crt
          key: server.key
      client_auth:
        trust_bundle: ca.crt
    routes:
      - name: grpc
        match: { path_prefix: /probe.v1.Probe/ }
        upstream: grpc
        authorize: { allow: [{ trust_domain: example.org }] }
upstreams:
  - name: grpc
${h2 ? '    protocol: h2\n' : ''}    endpoints: [127.0.0.1:18080]
    tls:
      cert: client.crt
      key: client.key
      trust_bundle: ca.crt
      expect_id: spiffe://example.org/ns/probe/sa/grpc
`;
}

export function parseH2Probe(h2 = true): ConfigResult {
  return parseConfig(h2ProbeYaml(h2), '<h2 probe>', os.tmpdir(), { checkFiles: false });
}

export const gatewaySpeaksH2: boolean = parseH2Probe().ok;
