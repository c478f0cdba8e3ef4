import { describe, expect, it } from 'vitest'
import { HeldAcks } from '../../gateway/inputs/mqtt/held-acks.ts'

describe('PUBACKs held until the outbox commit (external mode)', () => {
  it('sends each PUBACK only once its message and every one before it are committed, in PUBLISH order', () => {
    const acks = new HeldAcks(10)
    const sent: number[] = []
    const held = [1, 2, 3].map((id) => acks.hold(id))
    for (const id of [1, 2, 3]) expect(acks.claim(id, () => sent.push(id))).toBe(true)
    acks.committed(held[1])
    acks.committed(held[2])
    expect(sent).toEqual([])
    acks.committed(held[0])
    expect(sent).toEqual([1, 2, 3])
    expect(acks.held).toBe(0)
  })

  it('holds a PUBACK MQTT.js asks for after the commit as well as before it', () => {
    const acks = new HeldAcks(10)
    const sent: number[] = []
    const first = acks.hold(7)
    acks.committed(first)
    expect(sent).toEqual([])
    acks.claim(7, () => sent.push(7))
    expect(sent).toEqual([7])
  })

  it('tells two messages with the same packet id apart by order (the broker reuses an id once it is acknowledged)', () => {
    const acks = new HeldAcks(10)
    const sent: string[] = []
    const a = acks.hold(5)
    acks.claim(5, () => sent.push('first'))
    const b = acks.hold(5)
    acks.claim(5, () => sent.push('second'))
    acks.committed(b)
    expect(sent).toEqual([])
    acks.committed(a)
    expect(sent).toEqual(['first', 'second'])
  })

  it('never sends what a closed connection held, nor a PUBACK for a message it does not hold', () => {
    const acks = new HeldAcks(10)
    const sent: number[] = []
    const old = acks.hold(1)
    acks.claim(1, () => sent.push(1))
    acks.reset()
    acks.committed(old)
    expect(sent).toEqual([])
    expect(acks.claim(2, () => sent.push(2))).toBe(false)
    expect(sent).toEqual([])
  })

  it('stops reading (withholds the next packet) at the limit of uncommitted messages, and goes on as commits finish', () => {
    const acks = new HeldAcks(2)
    const proceeded: number[] = []
    acks.begin(() => proceeded.push(1))
    acks.begin(() => proceeded.push(2))
    acks.begin(() => proceeded.push(3))
    expect(proceeded).toEqual([1, 2])
    acks.end()
    expect(proceeded).toEqual([1, 2, 3])
    // A closed connection abandons the packet that waited: its stream is gone.
    acks.begin(() => proceeded.push(4))
    acks.reset()
    acks.end()
    expect(proceeded).toEqual([1, 2, 3])
  })

  it('keeps a PUBACK in flight until the socket took it; a closed connection gives its room back once', () => {
    const acks = new HeldAcks(2)
    const proceeded: number[] = []
    const written: (() => void)[] = []
    for (const id of [1, 2]) {
      const held = acks.hold(id)
      acks.begin(() => proceeded.push(id))
      acks.claim(id, (done) => written.push(done))
      acks.committed(held)
    }
    // Both PUBACKs handed to the socket, neither taken yet: the third message waits.
    acks.hold(3)
    acks.begin(() => proceeded.push(3))
    expect(proceeded).toEqual([1, 2])
    written[0]()
    expect(proceeded).toEqual([1, 2, 3])
    // The connection closes with one PUBACK unwritten and one message held: both leave flight.
    acks.reset()
    acks.begin(() => proceeded.push(4))
    acks.begin(() => proceeded.push(5))
    expect(proceeded).toEqual([1, 2, 3, 4, 5])
    // The closed socket's late callback is not counted again.
    written[1]()
    acks.begin(() => proceeded.push(6))
    expect(proceeded).toEqual([1, 2, 3, 4, 5])
  })
})
