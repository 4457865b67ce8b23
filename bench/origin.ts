// The benchmark's origin: a uWebSockets.js SSLApp in its own process that requires the proxy's
// client certificate (ca_file_name) and answers `/` with 1 KB and `/big` with a large body. uWS
// rather than node:https because it leaves the CPU to the proxy under test (~2x node:https); its
// limit (a client without a certificate is still served) does not matter here. See DESIGN.md.
//
// usage: node dist/bench/origin.js --port P --cert F --key F --ca F [--big-bytes N]
import uWS from 'uwebsockets';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? process.argv[i + 1] : fallback;
  if (value === undefined) {
    process.stderr.write(`origin: --${name} is required\n`);
    process.exit(2);
  }
  return value;
}

const port = Number(arg('port'));
const bigBytes = Number(arg('big-bytes', String(10 * 1024 * 1024)));
// Bodies built once: the origin must cost as little as possible per request.
const small = Buffer.alloc(1024, 'x');
const big = Buffer.alloc(bigBytes, 'y');

const app = uWS.SSLApp({ cert_file_name: arg('cert'), key_file_name: arg('key'), ca_file_name: arg('ca') });
app.get('/big', (res) => {
  res.cork(() => {
    res.writeHeader('content-type', 'application/octet-stream').end(big);
  });
});
app.any('/*', (res) => {
  res.cork(() => {
    res.writeHeader('content-type', 'text/plain').end(small);
  });
});
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    process.stderr.write(`origin: cannot listen on 127.0.0.1:${port}\n`);
    process.exit(1);
  }
  process.stdout.write(`origin listening on https://127.0.0.1:${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
