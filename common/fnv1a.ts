/**
 * 32-bit FNV-1a: a cheap fingerprint of a payload, to tell a redelivery from a reused frame or
 * packet id. `seed` continues a fingerprint (the hash of what came before, e.g. the topic).
 */
export function fnv1a(bytes: Buffer | string, seed = 0x811c9dc5): number {
  let h = seed
  if (typeof bytes === 'string') {
    for (let i = 0; i < bytes.length; i++) {
      h ^= bytes.charCodeAt(i) & 0xff
      h = Math.imul(h, 0x01000193)
    }
  } else {
    for (let i = 0; i < bytes.length; i++) {
      h ^= bytes[i]
      h = Math.imul(h, 0x01000193)
    }
  }
  return h >>> 0
}
