// The passthrough suite (support/passthrough-relay-suite.ts) on the TypeScript pump: what runs
// where the native one was not built, or with GATEHOUSE_NATIVE_PUMP=off. Every gateway module is
// imported after the variable is set (vitest runs each test file in a fresh module graph).
import { expect, test } from 'vitest';

process.env.GATEHOUSE_NATIVE_PUMP = 'off';
const { pumpName } = await import('../gateway/passthrough/native-pump.js');
await import('./support/passthrough-relay-suite.js');

test('GATEHOUSE_NATIVE_PUMP=off: relays are pumped in TypeScript', () => {
  expect(pumpName()).toBe('typescript');
});
