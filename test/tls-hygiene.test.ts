// What a TLS scanner (testssl.sh, sslscan) checks on a terminate listener, checked with real
// clients: client-initiated renegotiation is refused without a second handshake (openssl s_client
// and Node's renegotiate()), TLS 1.0/1.1 are off, TLS 1.2 offers ECDHE with AEAD suites only (no
// CBC); `tls.ciphers` and `tls.curves` change what is offered and are checked name by name at
// load; upstream connections offer the same AEAD-only suites.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, loadConfigFile } from '../gateway/config/load-config.js';
import type { GatewayConfig, ListenerTls, Upstream } from '../gateway/config/types.js';
import { run } from './support/front-door-harness.js';
import { request } from './support/mtls-client.js';
import { allow, gatewayConfig, terminateRoute, terminateYaml } from './support/gateway-config.js';
import { gatewayPerTest } from './support/gateway-per-test.js';
import { ProxyCerts } from './support/proxy-parties.js';
import { id, type TestPki } from './support/test-pki.js';

let pki: TestPki;
let certs: ProxyCerts;
let upstream: https.Server;
let upstreamPort: number;
const startGatewayForTest = gatewayPerTest();

beforeAll(async () => {
  certs = await ProxyCerts.issue({ origin: 'payments' });
  pki = certs.pki;
  // An upstream that speaks only CBC suites over TLS 1.2, as old servers do.
  upstream = https.createServer(
    { cert: certs.origin.chainPem, key: certs.origin.keyPem, ca: pki.ca.rootPem, requestCert: true, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384' },
    (_req, res) => res.end('cbc upstream\n'),
  );
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => upstream?.close(resolve));
  pki?.cleanup();
});

async function start(tlsExtra: Partial<ListenerTls> = {}, upstreams: Upstream[] = [cbcUpstream()]) {
  const listener = certs.listener([terminateRoute('all', 'cbc', allow(id('frontend')))]);
  const config: GatewayConfig = gatewayConfig([{ ...listener, tls: { ...listener.tls!, ...tlsExtra } }], upstreams);
  return startGatewayForTest(config);
}

const cbcUpstream = (): Upstream => certs.upstream('cbc', upstreamPort);

/** `openssl s_client` with the test client certificate; stdin is closed at once: the handshake and nothing else. */
function sClient(port: number, args: string[]) {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caFile, '-cert', certs.frontend.certFile, '-key', certs.frontend.keyFile, ...args], { timeoutMs: 10_000 });
}

const handshakeOk = (r: { code: number | null; stdout: string }) => r.code === 0 && /^\s*Verification: OK|Verify return code: 0 \(ok\)/m.test(r.stdout) && !/Cipher is \(NONE\)/.test(r.stdout);

/**
 * `openssl s_client -tls1_2` that asks for a renegotiation ("R") once the handshake is done, then
 * sends a request. Resolves with everything it printed once it exits (5 s at most).
 */
function renegotiateWithOpenssl(port: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-CAfile', pki.caFile, '-cert', certs.frontend.certFile, '-key', certs.frontend.keyFile]);
    let output = '';
    let asked = false;
    const onOutput = (chunk: Buffer) => {
      output += chunk.toString();
      if (!asked && /^---\n(?:.*\n)*?SSL-Session:/m.test(output) && output.includes('Verify return code')) {
        asked = true;
        child.stdin.write('R\n');
        setTimeout(() => child.stdin.end('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'), 500);
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const timer = setTimeout(() => child.kill(), 5000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('renegotiation', () => {
  it('openssl s_client -tls1_2 "R": refused with no_renegotiation, no second handshake, the connection ends', async () => {
    const port = await start();
    const { code, output } = await renegotiateWithOpenssl(port);
    expect(output).toContain('RENEGOTIATING');
    expect(output).toMatch(/no renegotiation/);
    // A renegotiation that happened would verify the server's certificate again (depth=0 a second time).
    expect(output.match(/^depth=0 /gm)).toHaveLength(1);
    expect(output).not.toContain('HTTP/1.1');
    expect(code).not.toBe(0);
  });

  it("Node's tlsSocket.renegotiate() as the client fails at once, ten times out of ten, on new connections", async () => {
    const port = await start();
    for (let i = 0; i < 10; i++) {
      const error = await new Promise<Error | null>((resolve, reject) => {
        const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: pki.ca.rootPem, cert: certs.frontend.chainPem, key: certs.frontend.keyPem, maxVersion: 'TLSv1.2' });
        socket.setTimeout(5000, () => {
          socket.destroy();
          reject(new Error('no answer to the renegotiation within 5 s'));
        });
        // The refusal arrives as an alert, read like data: an error on the socket. A renegotiation
        // that went through would call back with null.
        socket.on('error', (err) => resolve(err));
        socket.resume();
        socket.once('secureConnect', () => {
          const started = socket.renegotiate({}, (err) => {
            socket.destroy();
            resolve(err);
          });
          if (!started) reject(new Error('renegotiate() did not start'));
        });
      });
      expect(error).toBeInstanceOf(Error);
      expect((error as Error & { code?: string }).code).toBe('ERR_SSL_NO_RENEGOTIATION');
    }
  });
});

describe('protocol versions and suites (what testssl.sh and sslscan check)', () => {
  it.each(['-tls1', '-tls1_1'])('%s: refused even from a client that offers it (security level 0)', async (version) => {
    const port = await start();
    const result = await sClient(port, [version, '-cipher', 'DEFAULT@SECLEVEL=0']);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/alert protocol version|unsupported protocol|wrong version number/i);
  });

  it('TLS 1.2 accepts exactly the ECDHE AEAD suites of the default and no CBC, CCM or ARIA suite', async () => {
    const port = await start();
    const verdicts: Record<string, boolean> = {};
    for (const suite of [
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-ECDSA-AES128-SHA256',
      'ECDHE-ECDSA-AES256-SHA384',
      'ECDHE-ECDSA-AES128-CCM',
      'ECDHE-ECDSA-ARIA128-GCM-SHA256',
    ]) {
      verdicts[suite] = handshakeOk(await sClient(port, ['-tls1_2', '-cipher', `${suite}@SECLEVEL=0`]));
    }
    expect(verdicts).toEqual({
      'ECDHE-ECDSA-AES128-GCM-SHA256': true,
      'ECDHE-ECDSA-AES256-GCM-SHA384': true,
      'ECDHE-ECDSA-CHACHA20-POLY1305': true,
      'ECDHE-ECDSA-AES128-SHA': false,
      'ECDHE-ECDSA-AES256-SHA': false,
      'ECDHE-ECDSA-AES128-SHA256': false,
      'ECDHE-ECDSA-AES256-SHA384': false,
      'ECDHE-ECDSA-AES128-CCM': false,
      'ECDHE-ECDSA-ARIA128-GCM-SHA256': false,
    });
    // Everything OpenSSL has that is not AEAD, offered at once: none is taken.
    expect(handshakeOk(await sClient(port, ['-tls1_2', '-cipher', 'ALL:!AESGCM:!CHACHA20:!AESCCM:!ARIAGCM@SECLEVEL=0']))).toBe(false);
  });

  it('tls.ciphers and tls.curves replace the defaults', async () => {
    // In TLS 1.2 OpenSSL also holds EC certificates (the client's P-256 one here) to the groups listed.
    const port = await start({ ciphers: ['ECDHE-ECDSA-AES256-GCM-SHA384', 'TLS_AES_256_GCM_SHA384'], curves: ['P-384', 'P-256'] });
    const tls12 = await sClient(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256', '-groups', 'X25519:P-256']);
    expect(handshakeOk(tls12)).toBe(true);
    expect(tls12.stdout).toMatch(/Cipher is ECDHE-ECDSA-AES256-GCM-SHA384/);
    expect(tls12.stdout).toMatch(/Server Temp Key: ECDH, prime256v1/); // X25519 first in the client's list, not in ours
    expect(handshakeOk(await sClient(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256', '-groups', 'P-256']))).toBe(false);
    expect(handshakeOk(await sClient(port, ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384', '-groups', 'P-384']))).toBe(true);
    expect(handshakeOk(await sClient(port, ['-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256', '-groups', 'P-384']))).toBe(false);
    expect(handshakeOk(await sClient(port, ['-tls1_3', '-ciphersuites', 'TLS_AES_256_GCM_SHA384', '-groups', 'X25519']))).toBe(false);
  });

  it('upstream connections offer the same AEAD-only suites: a CBC-only upstream is refused (502 upstream_tls_failed)', async () => {
    const port = await start();
    const res = await request({ port, ca: pki.ca.rootPem, cert: certs.frontend });
    expect(res.status).toBe(502);
    expect(res.json().reason).toBe('upstream_tls_failed');
  });

  it('an upstream may be given CBC suites explicitly, and then it is reached', async () => {
    const withCbc: Upstream = { ...cbcUpstream(), tls: { ...cbcUpstream().tls!, ciphers: ['ECDHE-ECDSA-AES128-SHA'] } };
    const port = await start({}, [withCbc]);
    const res = await request({ port, ca: pki.ca.rootPem, cert: certs.frontend });
    expect(res.status).toBe(200);
    expect(res.body).toBe('cbc upstream\n');
  });
});

describe('tls.ciphers and tls.curves in a configuration file', () => {
  const load = (tlsLines: string, upstreamTlsLines = '') => {
    const file = path.join(pki.dir, `suites-${Math.random().toString(36).slice(2)}.yaml`);
    const upstreamTls = `    tls:
      cert: ${certs.gatewayClient.certFile}
      key: ${certs.gatewayClient.keyFile}
      trust_bundle: ${pki.caFile}
      expect_id: ${id('payments')}
${upstreamTlsLines}`;
    fs.writeFileSync(file, terminateYaml({ certFile: certs.server.certFile, keyFile: certs.server.keyFile, trustBundle: pki.caFile, tlsLines, upstreamTls }));
    return { file, result: loadConfigFile(file) };
  };
  const problems = (r: ReturnType<typeof load>) => (r.result.ok ? [] : r.result.problems.map(formatProblem));
  const warnings = (r: ReturnType<typeof load>) => r.result.warnings.map(formatProblem);

  it('an unknown cipher suite is an error at its line, with the near miss', () => {
    const r = load('      ciphers: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-GCM-SHA265]\n');
    expect(problems(r)).toEqual([
      `${r.file}:10:48: listeners[0].tls.ciphers[1]: 'ECDHE-ECDSA-AES128-GCM-SHA265' is not a cipher suite this OpenSSL knows (did you mean 'ECDHE-ECDSA-AES128-GCM-SHA256'?): list one suite name per entry, like ECDHE-ECDSA-AES128-GCM-SHA256 (cipher-string syntax such as HIGH or !aNULL is not taken)`,
    ]);
  });

  it('cipher-string syntax is refused; so is an unknown group, in an upstream too', () => {
    const r = load('      ciphers: ["HIGH:!aNULL"]\n      curves: [X25519, P-999]\n', '      curves: [brainpool-nope]\n');
    expect(problems(r).map((p) => p.slice(r.file.length + 1))).toEqual([
      expect.stringMatching(/^10:\d+: listeners\[0\]\.tls\.ciphers\[0\]: 'HIGH:!aNULL' is not a cipher suite/),
      expect.stringMatching(/^11:\d+: listeners\[0\]\.tls\.curves\[1\]: 'P-999' is not a key exchange group this OpenSSL knows/),
      expect.stringMatching(/^\d+:\d+: upstreams\[0\]\.tls\.curves\[0\]: 'brainpool-nope' is not a key exchange group/),
    ]);
  });

  it('TLS 1.3 suites alone while TLS 1.2 is on: an error (no TLS 1.2 client could connect)', () => {
    const r = load('      ciphers: [TLS_AES_128_GCM_SHA256]\n');
    expect(problems(r)).toEqual([expect.stringMatching(/:10:\d+: listeners\[0\]\.tls\.ciphers: lists only TLS 1\.3 suites/)]);
    expect(load('      min_version: TLSv1.3\n      ciphers: [TLS_AES_128_GCM_SHA256]\n').result.ok).toBe(true);
  });

  it('a CBC suite or one without forward secrecy is allowed, with a warning', () => {
    const r = load('      ciphers: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-SHA, AES128-GCM-SHA256]\n');
    expect(r.result.ok).toBe(true);
    expect(warnings(r)).toEqual([
      expect.stringMatching(/listeners\[0\]\.tls\.ciphers\[1\]: 'ECDHE-ECDSA-AES128-SHA' is not an AEAD suite \(CBC\)/),
      expect.stringMatching(/listeners\[0\]\.tls\.ciphers\[2\]: 'AES128-GCM-SHA256' has no forward secrecy/),
    ]);
  });
});
