// A 64 MB response an upstream writes only as fast as the gateway takes it (backpressure tests):
// every chunk handed to the socket is counted, so a test sees how far the upstream got.
import type { ServerResponse } from 'node:http';

/** Writes 64 MB to `res` in 64 KiB chunks, waiting for 'drain'; `written` is told of each chunk. */
export function pumpHugeResponse(res: ServerResponse, written: (bytes: number) => void): void {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let left = 1024;
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  const pump = () => {
    while (left > 0) {
      left--;
      written(chunk.length);
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
  res.on('close', () => (left = 0));
}
