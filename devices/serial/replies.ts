/** Waiting for the gateway's reply to one frame of one device. */
import type { Reply, SerialEnd } from './serial-end.ts'

export function awaitReply(end: SerialEnd, device: string, seq: number, timeoutMs: number): Promise<Reply | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off()
      resolve(undefined)
    }, timeoutMs)
    const off = end.onReply((r) => {
      if (r.device !== device || r.seq !== seq) return
      clearTimeout(timer)
      off()
      resolve(r)
    })
  })
}
