// For suites that start a gateway of their own in each test (a config per case): each gateway
// starts without an admin server and with a fast lifecycle (100 ms debounce, no polling, 1 s tick),
// and all of them are closed after each test.
import { afterEach } from 'vitest';
import type { GatewayConfig } from '../../gateway/config/types.js';
import { startGateway, type RunningGateway } from '../../gateway/runtime/gateway.js';
import { listenerPort } from './proxy-parties.js';

/** Call at the top of a test file; the function it returns starts a gateway and resolves with the port of its listener `public`. */
export function gatewayPerTest(): (config: GatewayConfig) => Promise<number> {
  const running: RunningGateway[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((g) => g.close()));
  });
  return async (config) => {
    const gateway = await startGateway(config, { admin: false, lifecycle: { debounceMs: 100, pollMs: 0, tickMs: 1000 } });
    running.push(gateway);
    return listenerPort(gateway);
  };
}
