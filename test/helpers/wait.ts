/**
 * Waiting on a condition with a deadline: for state that has no event to listen to (a row in a
 * store reached over HTTP). Fails with the last observed value, never passes by timing out.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}${last instanceof Error ? `: ${last.message}` : ''}`)
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50))
  }
}

/** Resolves with the first event `emitter` emits named `event` that satisfies `match`. */
export function nextEvent<T>(
  subscribe: (listener: (value: T) => void) => () => void,
  match: (value: T) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe()
      reject(new Error(`no matching event within ${timeoutMs} ms`))
    }, timeoutMs)
    const unsubscribe = subscribe((value) => {
      if (!match(value)) return
      clearTimeout(timer)
      unsubscribe()
      resolve(value)
    })
  })
}
