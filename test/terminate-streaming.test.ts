// Large bodies both ways through the terminate path, with curl as the client: a chunked upload, a
// download the upstream streams without a length (re-chunked to the client), one with a length,
// and a client that reads slowly (backpressure: the gateway must not buffer the whole response).
import { createHash } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { run } from './support/front-door-harness.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { expectHeldBack } from './support/stalled-reader.js';
import { id, type WrittenCert } from './support/test-pki.js';

const MB = 1024 * 1024;
const PAYLOAD = Buffer.alloc(6 * MB);
for (let i = 0; i < PAYLOAD.length; i += 4) PAYLOAD.writeUInt32LE((i * 2654435761) >>> 0, i);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let certs: ProxyCerts;
let gateway: RunningGateway;
let upstream: https.Server;
let port: number;
const uploads: { length: number; sha: string; chunked: boolean }[] = [];
/** Bytes the upstream has handed to its socket for /huge (more than loopback's socket buffers hold). */
let hugeWritten = 0;
const HUGE = 16 * PAYLOAD.length;

/** An mTLS upstream: /stream answers PAYLOAD in 64 KiB writes without a length, /sized with one; POST echoes a digest. */
function startUpstream(cert: WrittenCert, caPem: string): Promise<https.Server> {
  const server = https.createServer({ cert: cert.chainPem, key: cert.keyPem, ca: caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    if (req.method === 'POST') {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        uploads.push({ length: body.length, sha: sha(body), chunked: req.headers['transfer-encoding'] === 'chunked' });
        res.end(JSON.stringify({ length: body.length }));
      });
      return;
    }
    const total = req.url === '/huge' ? HUGE : PAYLOAD.length;
    if (req.url === '/stream') res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: chunked
    else res.writeHead(200, { 'content-length': String(total) });
    let offset = 0;
    const pump = (): void => {
      while (offset < total) {
        const at = offset % PAYLOAD.length;
        const chunk = PAYLOAD.subarray(at, at + 64 * 1024);
        offset += chunk.length;
        if (req.url === '/huge') hugeWritten = offset;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  upstream = await startUpstream(certs.origin, certs.pki.ca.rootPem);
  const config = gatewayConfig([certs.listener([terminateRoute('files', 'files', allow(id('frontend')))])], [certs.upstream('files', (upstream.address() as AddressInfo).port)]);
  gateway = await startGateway(config);
  port = listenerPort(gateway);
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  certs?.pki.cleanup();
});

function curl(args: string[]) {
  return run('curl', ['-sS', '--http1.1', '--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile, ...args], { timeoutMs: 20_000 });
}

describe('terminate: large bodies both ways (curl)', () => {
  it('streams a chunked 6 MB upload to the upstream intact', async () => {
    const file = path.join(certs.pki.dir, 'upload.bin');
    fs.writeFileSync(file, PAYLOAD);
    const r = await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file}`, `https://localhost:${port}/upload`]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ length: PAYLOAD.length });
    expect(uploads.at(-1)).toEqual({ length: PAYLOAD.length, sha: sha(PAYLOAD), chunked: true });
  });

  it.each(['/stream', '/sized'])('downloads 6 MB from %s intact', async (route) => {
    const out = path.join(certs.pki.dir, `download${route.replace('/', '-')}.bin`);
    const r = await curl(['-D', '-', '-o', out, `https://localhost:${port}${route}`]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 200 /);
    if (route === '/stream') expect(r.stdout).toMatch(/transfer-encoding: chunked/i);
    else expect(r.stdout).toMatch(new RegExp(`content-length: ${PAYLOAD.length}`, 'i'));
    expect(sha(fs.readFileSync(out))).toBe(sha(PAYLOAD));
  });

  it('holds back a slow reader: the upstream is paused instead of the gateway buffering the response', async () => {
    await expectHeldBack(gateway, port, { ca: certs.pki.ca.rootPem, cert: certs.frontend }, '/huge', () => hugeWritten, HUGE);
  }, 30_000);
});
