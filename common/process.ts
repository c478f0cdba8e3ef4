/**
 * Process lifecycle shared by every `main.ts`: stop cleanly on SIGINT/SIGTERM, and also when the
 * parent that spawned us over IPC goes away (the demo), so no orphan is ever left behind.
 */
import type { Logger } from './logger.ts'

export function onShutdown(logger: Logger, stop: (reason: string) => Promise<void>): void {
  let stopping = false
  const run = (reason: string) => {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'shutting down')
    // A second signal, or a stop that hangs, must not leave the process running forever.
    const force = setTimeout(() => {
      logger.error({ reason }, 'shutdown took too long; exiting')
      process.exit(1)
    }, 15_000)
    force.unref()
    stop(reason).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => run('SIGINT'))
  process.on('SIGTERM', () => run('SIGTERM'))
  if (process.send) process.on('disconnect', () => run('parent exited'))
}

/** Reads `--name value` from argv. */
export function argValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
