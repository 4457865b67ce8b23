// A loopback port that refuses connections for as long as a test holds it. A port that was free a
// moment ago (bound, then closed) is no dead endpoint: any process on the machine (another test
// file, another checkout's suite) may bind it meanwhile, and the gateway's "refused" attempts then
// reach that server instead. Here the port is the local end of an open TCP connection: nothing
// listens on it, so connecting is refused, and no one can bind it (EADDRINUSE, SO_REUSEADDR and
// SO_REUSEPORT included) until close().
import net, { type AddressInfo } from 'node:net';

export interface RefusedPort {
  readonly port: number;
  close(): Promise<void>;
}

export async function holdRefusedPort(): Promise<RefusedPort> {
  const anchor = net.createServer();
  await new Promise<void>((resolve, reject) => {
    anchor.once('error', reject);
    anchor.listen(0, '127.0.0.1', resolve);
  });
  const accepted = new Promise<net.Socket>((resolve) => anchor.once('connection', resolve));
  const holder = net.connect({ host: '127.0.0.1', port: (anchor.address() as AddressInfo).port });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.once('connect', resolve);
      holder.once('error', reject);
    });
  } catch (err) {
    anchor.close();
    throw err;
  }
  const peer = await accepted;
  for (const socket of [holder, peer]) socket.on('error', () => {});
  return {
    port: holder.localPort!,
    close: async () => {
      holder.destroy();
      peer.destroy();
      await new Promise<void>((resolve) => anchor.close(() => resolve()));
    },
  };
}
