// The passthrough suite (support/passthrough-relay-suite.ts) on the native pump, which `npm
// install` builds wherever there is a C compiler; relays must be pumped by it, not fall back.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect, test } from 'vitest';
import { nativePump, pumpName } from '../gateway/passthrough/native-pump.js';
import { OpenResources, backend, frontDoorListener, passthroughRoute, rawBackend } from './support/front-door-harness.js';
import { waitFor } from './support/lifecycle-harness.js';
import './support/passthrough-relay-suite.js';

const HELLO = Buffer.from(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'hellos', 'node.hex'), 'utf8').replace(/\s/g, ''), 'hex');

function hasCompiler(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test.runIf(process.platform === 'linux' && hasCompiler())('the native pump was built by the install, and a relay is pumped by it until it closes', async () => {
  expect(pumpName()).toBe('native');
  const resources = new OpenResources();
  try {
    const raw = await resources.keep(rawBackend((socket) => socket.once('data', () => socket.write('pumped'))));
    const door = await resources.frontDoor({ listener: frontDoorListener([passthroughRoute('n', 'n', { default: true })]), backends: [backend('n', [raw.port])] });
    const before = nativePump!.size; // relays the suite's tests still hold open
    const socket = net.connect({ host: '127.0.0.1', port: door.address().port });
    const reply = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.write(HELLO);
    expect(await reply).toBe('pumped');
    expect(nativePump!.size).toBe(before + 1);
    socket.end();
    raw.connections[0]!.end();
    await waitFor('the pump closed the relay', () => nativePump!.size === before);
    expect(door.openConnections()).toBe(0);
    socket.destroy();
  } finally {
    await resources.closeAll();
  }
});
