// `gatehouse grpc-health`: the standard gRPC health check (grpc.health.v1.Health/Check) over
// HTTP/2 with mTLS, so the demo's gRPC can be tried without installing a gRPC client. Defaults:
// the embedded demo's gateway and the development PKI of `gatehouse start`.
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatAddress, parseAddress } from '../config/config-values.js';
import { callGrpc } from '../demo/grpc-call.js';
import { GRPC_STATUS, grpcStatusName } from '../grpc/grpc-wire.js';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HEALTH_CHECK_PATH, SERVING_STATUS, servingStatusName } from '../demo/health-messages.js';
import { DEV_DIR } from '../dev/dev-pki.js';

const USAGE = `usage: gatehouse grpc-health [--address HOST:PORT] [--service NAME] [options]

Calls ${HEALTH_CHECK_PATH} over HTTP/2 with mTLS and prints the serving status.

  --address HOST:PORT   the server (default localhost:8443: the embedded demo's gateway)
  --service NAME        the service asked about (default '': the server as a whole)
  --method PATH         call another method with the same request, to see how the server answers
                        one it does not have (e.g. /grpc.health.v1.Health/List: UNIMPLEMENTED)
  --cacert FILE         trust bundle for the server's certificate (default .gatehouse/dev/ca.crt)
  --cert FILE, --key FILE   the client certificate (default .gatehouse/dev/client.crt and .key)
  --servername NAME     the server's name where HOST is an address: SNI, :authority and the name its
                        certificate must carry (default: HOST)
  --timeout MS          the call's deadline, sent as grpc-timeout (default 5000)

Exits 0 when the answer is SERVING, 1 for any other answer or failure, 2 for bad usage.
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        address: { type: 'string', default: 'localhost:8443' },
        service: { type: 'string', default: '' },
        method: { type: 'string', default: HEALTH_CHECK_PATH },
        cacert: { type: 'string', default: path.join(DEV_DIR, 'ca.crt') },
        cert: { type: 'string', default: path.join(DEV_DIR, 'client.crt') },
        key: { type: 'string', default: path.join(DEV_DIR, 'client.key') },
        servername: { type: 'string' },
        timeout: { type: 'string', default: '5000' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const address = parseAddress(values.address);
  if (!address.ok) return usageError(`--address: ${address.problem}`);
  if (!values.method.startsWith('/')) return usageError(`--method: expected a path like ${HEALTH_CHECK_PATH}, got '${values.method}'`);
  if (!/^\d{1,7}$/.test(values.timeout) || Number(values.timeout) === 0) return usageError(`--timeout: expected milliseconds (1 to 9999999), got '${values.timeout}'`);
  const timeoutMs = Number(values.timeout);
  let tls;
  try {
    tls = { ca: fs.readFileSync(values.cacert), cert: fs.readFileSync(values.cert), key: fs.readFileSync(values.key) };
  } catch (err) {
    return failure(`${(err as Error).message}${values.cacert.startsWith(DEV_DIR) ? ' (the development PKI is created by `gatehouse start` without --config)' : ''}`);
  }

  const { host, port } = address.value;
  const servername = values.servername ?? host;
  const hostPort = (name: string) => formatAddress({ host: name, port });
  // A gateway refuses an :authority that disagrees with the TLS server name (421): both say servername.
  const authority = hostPort(servername);
  const session = http2.connect(`https://${hostPort(host)}`, { ...tls, servername, ALPNProtocols: ['h2'] });
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
  } catch (err) {
    session.destroy();
    const noH2 = (err as { code?: string }).code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' ? ' (the server does not offer HTTP/2: no ALPN h2)' : '';
    return failure(`cannot call ${hostPort(host)} over HTTP/2: ${(err as Error).message.trim()}${noH2}`);
  }
  session.on('error', () => {}); // a failure mid-call ends the call, which reports it
  try {
    const result = await callGrpc(session, values.method, [encodeHealthCheckRequest(values.service)], {
      authority,
      headers: { 'grpc-timeout': `${timeoutMs}m` },
      timeoutMs: timeoutMs + 1000,
    });
    if (result.grpcStatus === undefined) {
      return failure(`${values.method} ended without a gRPC status (HTTP ${result.httpStatus}${result.rstCode !== undefined ? `, stream reset with code ${result.rstCode}` : ''})`);
    }
    if (result.grpcStatus !== GRPC_STATUS.OK) {
      process.stdout.write(`grpc-status ${result.grpcStatus} ${grpcStatusName(result.grpcStatus)}: ${result.grpcMessage}\n`);
      return 1;
    }
    const response = result.messages.length === 1 ? decodeHealthCheckResponse(result.messages[0]!) : undefined;
    if (response === undefined) return failure(`${values.method} answered OK but not with one HealthCheckResponse`);
    process.stdout.write(servingStatusName(response.status) + '\n');
    return response.status === SERVING_STATUS.SERVING ? 0 : 1;
  } finally {
    session.close();
  }
}

function failure(message: string): number {
  process.stderr.write(`gatehouse grpc-health: ${message}\n`);
  return 1;
}

function usageError(message: string): number {
  process.stderr.write(`gatehouse grpc-health: ${message}\n${USAGE}`);
  return 2;
}
