/** Runs before every test file (vitest.config.ts setupFiles). */
import { afterAll } from 'vitest'
import { removeTestTempDirs } from './helpers/temp.ts'

// Hooks run as a stack, so this runs after the file's own afterAll hooks have stopped what they
// started.
afterAll(() => removeTestTempDirs())
