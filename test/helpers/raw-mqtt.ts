/**
 * A bare MQTT 3.1.1 connection built from mqtt-packet, for tests that need control a client
 * library does not give: choosing packet ids, setting DUP, sending malformed sequences.
 */
import { connect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

export class RawMqtt {
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 })
  private readonly waiting: { match: (p: Packet) => boolean; resolve: (p: Packet) => void }[] = []
  readonly received: Packet[] = []

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => this.parser.parse(d))
    this.parser.on('packet', (p: Packet) => {
      this.received.push(p)
      const i = this.waiting.findIndex((w) => w.match(p))
      if (i >= 0) this.waiting.splice(i, 1)[0].resolve(p)
    })
  }

  static async open(port: number): Promise<RawMqtt> {
    const socket = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawMqtt(socket)
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet))
  }

  next(match: (p: Packet) => boolean, timeoutMs = 5000): Promise<Packet> {
    const already = this.received.find(match)
    if (already) return Promise.resolve(already)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching packet')), timeoutMs)
      this.waiting.push({ match, resolve: (p) => (clearTimeout(timer), resolve(p)) })
    })
  }

  async login(clientId: string, username: string, password: string): Promise<void> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, username, password: Buffer.from(password) })
    const connack = (await this.next((p) => p.cmd === 'connack')) as Packet & { returnCode: number }
    if (connack.returnCode !== 0) throw new Error(`CONNACK ${connack.returnCode}`)
  }

  close(): void {
    this.socket.destroy()
  }
}
