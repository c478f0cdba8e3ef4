/**
 * What a bad serial line does to bytes, reproducibly (a seeded generator): garbage between
 * sentences, and now and then a flipped byte inside one. For the "line full of noise" runs.
 */

/** Mulberry32: a tiny seeded generator, so a failing noisy run can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface NoiseOptions {
  random: () => number
  /** Up to this many garbage bytes before each sentence. */
  gapBytes: number
  /** Flip one byte in about one sentence in this many (0: never). The device resends those. */
  corruptOneIn?: number
}

/** Random bytes, `$` and line ends included: the framer must resync on them, not be fooled. */
export function garbage(n: number, random: () => number): Buffer {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256)
  return out
}

/** The sentence as a noisy line delivers it: garbage first, maybe one byte flipped. */
export function throughNoise(sentence: string, noise: NoiseOptions): Buffer {
  const bytes = Buffer.from(sentence, 'latin1')
  const n = noise.corruptOneIn ?? 0
  if (n > 0 && noise.random() * n < 1) {
    // Inside the body: a flipped `$` or line end is a different fault, tested on its own.
    const at = 1 + Math.floor(noise.random() * (bytes.length - 6))
    bytes[at] = bytes[at] ^ (1 + Math.floor(noise.random() * 127))
  }
  return Buffer.concat([garbage(Math.floor(noise.random() * (noise.gapBytes + 1)), noise.random), bytes])
}

/** A line full of noise: `bytes` of garbage and nothing else, in chunks as a UART delivers them. */
export async function floodNoise(end: { write(data: Buffer): Promise<void> }, bytes: number, random: () => number, chunk = 256): Promise<void> {
  for (let sent = 0; sent < bytes; sent += chunk) await end.write(garbage(Math.min(chunk, bytes - sent), random))
}
