// Opens N idle mutual-TLS connections to 127.0.0.1:PORT and keeps them open until killed, for
// the memory-per-connection scenario. Prints `ready OPEN FAILED` once every handshake has
// finished (or failed) and a second has passed (a server that rejects the client certificate
// after the handshake closes the connection within that second).
//
// usage: node dist/bench/load/idle-client.js --port P --cert F --key F --count N [--batch 64]
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) {
    process.stderr.write(`idle-client: --${name} is required\n`);
    process.exit(2);
  }
  return v;
}

const port = Number(arg('port'));
const count = Math.min(Number(arg('count')), 20_000);
const batch = Math.max(1, Math.min(Number(arg('batch', '64')), 1000));
const cert = readFileSync(arg('cert'));
const key = readFileSync(arg('key'));
// One context for all connections: the client side should cost as little as possible.
const secureContext = tls.createSecureContext({ cert, key });
const sockets: tls.TLSSocket[] = [];
/** Connections whose handshake finished and that are still open. */
let open = 0;

function connectOne(): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', secureContext, rejectUnauthorized: false });
    let connected = false;
    socket.once('secureConnect', () => {
      connected = true;
      open++;
      resolve();
    });
    socket.on('error', () => resolve());
    socket.on('close', () => {
      if (connected) open--;
      resolve();
    });
    sockets.push(socket);
  });
}

async function main(): Promise<void> {
  for (let started = 0; started < count; ) {
    const n = Math.min(batch, count - started);
    await Promise.all(Array.from({ length: n }, connectOne));
    started += n;
  }
  await new Promise((r) => setTimeout(r, 1000));
  process.stdout.write(`ready ${open} ${count - open}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`idle-client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
setInterval(() => {}, 60_000); // stay alive, idle, until killed
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
