/**
 * Temporary directories for tests, removed after each test file (test/setup.ts). The property
 * tests alone made thousands of office data directories per run, and they piled up in /tmp.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const made: string[] = []

export function testTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

export function removeTestTempDirs(): void {
  for (const dir of made.splice(0)) removeTestDir(dir)
}

/**
 * Removes a test's directory, retrying while it is still being written to. The checkpoint thread
 * (common/checkpointer.ts) closes its connection to a database a message round trip after the
 * owner's synchronous close(), and it may open one the test already closed: SQLite then creates
 * the -wal and -shm files again after rmSync deleted them, and the last rmdir fails with
 * ENOTEMPTY (seen once in CI, on the outbox's unit test).
 */
export function removeTestDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 })
}
