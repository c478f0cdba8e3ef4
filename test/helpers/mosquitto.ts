/** Mosquitto's own command-line clients, as the third-party peer. */
import { execFile } from 'node:child_process'
import type { Aedes } from 'aedes'
import { nextEvent } from './wait.ts'

export interface Subscription {
  /** Resolves once our broker has taken the SUBSCRIBE (its own 'subscribe' event). */
  subscribed: Promise<unknown>
  /** The payloads printed, once `count` messages arrived and mosquitto_sub exited. */
  messages: Promise<string[]>
}

/** mosquitto_sub for `count` messages (-C) on the filter after `-t`, giving up after 10 s (-W). */
export function mosquittoSub(aedes: Aedes, args: string[], count = 1): Subscription {
  const filter = args[args.indexOf('-t') + 1]
  // Listen before spawning, so the event cannot be missed.
  const subscribed = nextEvent<unknown>((listener) => {
    aedes.on('subscribe', listener)
    return () => aedes.off('subscribe', listener)
  }, (subs) => (subs as { topic: string }[]).some((s) => s.topic === filter))
  const messages = new Promise<string[]>((resolve, reject) => {
    execFile('mosquitto_sub', ['-C', String(count), '-W', '10', ...args], (err, stdout, stderr) => {
      if (err) reject(new Error(`mosquitto_sub failed: ${err.message} ${stderr}`))
      else resolve(stdout.split('\n').filter((l) => l.length > 0))
    })
  })
  return { subscribed, messages }
}
