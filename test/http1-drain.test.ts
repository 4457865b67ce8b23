// drain() on an HTTP/1.1 client connection (DownstreamSession): an idle keep-alive connection is
// closed at once; one with a request in flight answers it, with `connection: close`, then closes.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { waitFor } from './support/lifecycle-harness.js';
import { connectMtls } from './support/mtls-client.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { okResponse, startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let scripted: ScriptedTlsUpstream;

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  scripted = await startScriptedTlsUpstream(certs.origin, certs.pki.ca.rootPem, ({ socket, path }) => {
    if (path === '/now') socket.write(okResponse('now'));
    // /later is answered by the test.
  });
  gateway = await startGateway(gatewayConfig([certs.listener([terminateRoute('all', 'scripted', allow(id('frontend')))])], [certs.upstream('scripted', scripted.port)]));
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  await scripted?.close();
  certs?.pki.cleanup();
});

/** The gateway's session serving `socket`. */
function sessionOf(socket: TLSSocket) {
  return [...gateway.listeners.get('public')!.terminate!.served].find((s) => (s.socket as TLSSocket).remotePort === socket.localPort)!;
}

/** Everything the client reads until the gateway closes the connection. */
function readToClose(socket: TLSSocket): Promise<string> {
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  return new Promise((resolve) => socket.once('close', () => resolve(data)));
}

describe('drain() on an HTTP/1.1 connection', () => {
  it('closes an idle keep-alive connection at once', async () => {
    const socket = await connectMtls({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    const all = readToClose(socket);
    socket.write('GET /now HTTP/1.1\r\nhost: localhost\r\n\r\n');
    await waitFor('the response', () => scripted.requests.some((r) => r.path === '/now'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    sessionOf(socket).drain();
    const received = await Promise.race([all, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('still open')), 2000))]);
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(received).not.toMatch(/connection: close/i);
  });

  it('answers the request in flight with connection: close, then closes', async () => {
    const socket = await connectMtls({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    const all = readToClose(socket);
    const before = scripted.requests.length;
    socket.write('GET /later HTTP/1.1\r\nhost: localhost\r\n\r\n');
    const request = await waitFor('the request at the upstream', () => scripted.requests[before]);
    sessionOf(socket).drain();
    request.socket.write(okResponse('later'));
    const received = await Promise.race([all, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('still open')), 2000))]);
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(received).toMatch(/\r\nconnection: close\r\n/i);
    expect(received.endsWith('later')).toBe(true);
  });
});
