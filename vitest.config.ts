import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real TLS handshakes on a noisy 2-core machine: generous but bounded.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
