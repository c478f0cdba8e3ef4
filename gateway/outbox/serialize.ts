/**
 * The JSON of an envelope as it is committed. Readings are most of what a gateway commits, and
 * JSON.stringify's generic walk over them cost a fifth of the gateway's time; their shape is
 * known, and every identifier in them matches the Ident pattern (letters, digits, `_.-`), so it
 * needs no escaping and can be written directly. Everything else goes through JSON.stringify.
 */
import type { Envelope } from '../../contracts/envelope.ts'

export function envelopeJson(e: Envelope): string {
  if (e.kind !== 'reading' || !Number.isFinite(e.payload.value) || !Number.isFinite(e.ts)) {
    return JSON.stringify(e)
  }
  const p = e.payload
  // For a finite number `${n}` is exactly what JSON.stringify writes. A non-finite one should
  // never get this far, but if it does it must be written as JSON.stringify would (null), so the
  // cloud refuses that one envelope and the rest of its batch still lands.
  return (
    `{"id":"${e.id}","seq":${e.seq},"gateway":"${e.gateway}","office":"${e.office}","device":"${e.device}",` +
    (e.enterprise !== undefined ? `"enterprise":"${e.enterprise}",` : '') +
    (e.grid !== undefined ? `"grid":"${e.grid}",` : '') +
    `"ts":${e.ts},"kind":"reading","payload":{"quantity":"${p.quantity}","value":${p.value},"unit":${JSON.stringify(p.unit)}}}`
  )
}
