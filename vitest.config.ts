import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Forks, not threads: the suites start real servers and use a native addon (better-sqlite3),
    // and a crash in one must not take the others with it.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Loud notices from the binary checks must reach the console.
    silent: false,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
})
