// An mTLS upstream as its own process, for tests that kill one (SIGKILL) and start it again on the
// same port: `node dist/test/support/upstream-process.js PORT CERT KEY CA NAME`. It requires a client
// certificate from CA, answers `NAME METHOD PATH BODY_LENGTH` to every request and 200 to /healthz,
// prints `ready` once listening and `request PATH` for each request (not the checks).
import fs from 'node:fs';
import https from 'node:https';

const [port, cert, key, ca, name] = process.argv.slice(2);
if (!port || !cert || !key || !ca || !name) {
  console.error('usage: upstream-process.js PORT CERT KEY CA NAME');
  process.exit(2);
}
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca), requestCert: true, rejectUnauthorized: true }, (req, res) => {
  let length = 0;
  req.on('data', (chunk: Buffer) => (length += chunk.length));
  req.on('end', () => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    process.stdout.write(`request ${req.url}\n`);
    res.end(`${name} ${req.method} ${req.url} ${length}`);
  });
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
