/**
 * The camera input against a real gateway: ISAPI pushes over HTTP (and HTTPS) from the simulated
 * camera, what the outbox holds after the 200, what is refused and counted, the snapshot quota,
 * and camera JSON from AI boxes over MQTT (accepted, or nacked on cmd/{id}/nack).
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { silentLogger } from '../../common/logger.ts'
import { hashPassword } from '../../common/secrets.ts'
import { basicAuthorization, digestAuthorization, intrusionAtNight, IsapiCamera, multipartBody, type IsapiCameraOptions } from '../../devices/camera/isapi-camera.ts'
import { DEMO_CONFIG_PATH, loadGatewayConfig } from '../../gateway/config/load.ts'
import { Gateway } from '../../gateway/gateway.ts'
import type { CameraInput } from '../../gateway/inputs/camera/index.ts'
import { makeTestPki } from '../helpers/certs.ts'
import { testOfficeConfig } from '../helpers/office.ts'
import { capturingLogger, connectDevice } from '../helpers/stack.ts'
import { nextEvent } from '../helpers/wait.ts'

const fixture = (name: string) => readFileSync(new URL(`../fixtures/isapi/${name}`, import.meta.url))
const JPEG = fixture('snapshot.jpg')
const PASSWORD = 'cam-isapi-password-1'
// Three fixture snapshots fit; a fourth evicts the oldest.
const QUOTA_BYTES = 3 * JPEG.length
const MAX_SNAPSHOT_BYTES = 4096

interface Row {
  seq: number
  kind: string
  device: string
  body: string
}
interface Committed {
  seq: number
  kind: string
  device: string
  payload: Record<string, unknown>
}

function cameraInput(gateway: Gateway): CameraInput {
  const input = gateway.input('camera')
  if (!input) throw new Error('the gateway has no camera input')
  return input as CameraInput
}

async function officeWithCameras(extra: Record<string, unknown> = {}) {
  const secret = await hashPassword(PASSWORD)
  const demoDevices = loadGatewayConfig(DEMO_CONFIG_PATH, { env: {} }).devices
  const camera = (id: string) => ({ id, type: 'camera', via: 'http', grid: 'g-laojie-2', secret })
  return testOfficeConfig({
    devices: [...demoDevices, camera('cam-isapi-01'), camera('cam-isapi-02'), camera('cam-isapi-03'), camera('cam-isapi-04')],
    inputs: {
      camera: {
        host: '127.0.0.1',
        port: 0,
        snapshots: { maxBytes: MAX_SNAPSHOT_BYTES, quotaMb: QUOTA_BYTES / (1024 * 1024) },
        auth: { maxFailures: 3, windowSeconds: 60 },
        cameras: [
          { id: 'cam-isapi-02', allowFrom: ['127.0.0.5'] },
          { id: 'cam-isapi-04', digestHa1: createHash('md5').update(`cam-isapi-04:GridWatch camera input:${PASSWORD}`).digest('hex') },
        ],
        ...extra,
      },
    },
  })
}

describe('camera input (ISAPI push)', () => {
  let gateway: Gateway
  let url: string
  const { logger, lines } = capturingLogger('gateway')
  const clients: MqttClient[] = []
  const camera = (options: Partial<IsapiCameraOptions> = {}) =>
    new IsapiCamera({ url, deviceId: 'cam-isapi-01', password: PASSWORD, channelName: 'North gate', utcOffsetMinutes: 480, ...options })

  const metric = async (pattern: RegExp) => {
    const m = pattern.exec(await gateway.metrics.registry.metrics())
    return m ? Number(m[1]) : 0
  }
  const rejected = (source: string, reason: string) =>
    metric(new RegExp(`gateway_input_rejected_total\\{input="camera",source="${source}",reason="${reason}"\\} (\\d+)`))
  const lastSeq = () => Math.max(0, ...gateway.outbox.peek(100_000).map((r) => r.seq))
  /** Read through a separate connection: what it sees is on disk, not in the gateway's memory. */
  const committedSince = (seq: number, device?: string): Committed[] => {
    const db = new Database(gateway.outbox.path, { readonly: true })
    const rows = db.prepare('SELECT seq, kind, device, body FROM outbox WHERE seq > ? ORDER BY seq').all(seq) as Row[]
    db.close()
    return rows
      .filter((r) => device === undefined || r.device === device)
      .map((r) => ({ seq: r.seq, kind: r.kind, device: r.device, payload: (JSON.parse(r.body) as { payload: Record<string, unknown> }).payload }))
  }

  /** Every snapshot file on disk, as the reference an event carries. */
  const snapshotFiles = (): string[] => {
    const dir = cameraInput(gateway).snapshotDir
    return readdirSync(dir).flatMap((cam) => readdirSync(join(dir, cam)).map((f) => `snapshots/${cam}/${f}`))
  }

  beforeAll(async () => {
    gateway = await Gateway.start(await officeWithCameras(), { logger, processMetrics: false })
    url = `http://127.0.0.1:${cameraInput(gateway).port}/ISAPI/Event/notification/alert`
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await gateway?.stop()
  })

  it('reports itself healthy while listening', () => {
    expect(cameraInput(gateway).health()).toEqual({ ok: true, detail: `listening on 127.0.0.1:${cameraInput(gateway).port}` })
  })

  describe('events', () => {
    it('answers an XML event 200 with a ResponseStatus only once the event and its alert are on disk', async () => {
      const before = lastSeq()
      const res = await camera().post(fixture('fielddetection.xml'), 'application/xml; charset="UTF-8"')
      expect(res.status).toBe(200)
      expect(res.body).toMatch(/<ResponseStatus[^>]*>[\s\S]*<statusCode>1<\/statusCode>[\s\S]*<statusString>OK<\/statusString>/)
      const rows = committedSince(before, 'cam-isapi-01')
      expect(rows.map((r) => [r.kind, r.kind === 'alert' ? r.payload.type : r.payload.event])).toEqual([
        ['camera', 'intrusion'],
        ['alert', 'camera.intrusion'],
      ])
      expect(rows[0].payload).toEqual({ event: 'intrusion', confidence: 1, channel: 1, region: 'North gate, region 3 (human)' })
      expect(rows[1].payload).toMatchObject({ severity: 'major', state: 'raised' })
    })

    it('takes text/xml too, and the isapi.org namespace', async () => {
      const before = lastSeq()
      const res = await camera({ deviceId: 'cam-isapi-03' }).post(fixture('linedetection.xml'), 'text/xml')
      expect(res.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-03').filter((r) => r.kind === 'camera').map((r) => r.payload)).toEqual([
        { event: 'line_crossing', confidence: 0.87, channel: 2, region: 'region 1 (vehicle)' },
      ])
    })

    it('keeps a multipart snapshot on disk and carries its reference in the committed event', async () => {
      const before = lastSeq()
      const res = await camera().alarm({ eventType: 'fireDetection', at: new Date(), snapshot: JPEG })
      expect(res.status).toBe(200)
      const [event] = committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera')
      expect(event.payload).toMatchObject({ event: 'fire', channel: 1, region: 'North gate' })
      const ref = event.payload.snapshot as string
      expect(ref).toMatch(/^snapshots\/cam-isapi-01\/\d{13}-[0-9a-f]{8}\.jpg$/)
      expect(readFileSync(join(gateway.config.gateway.dataDir, ref))).toEqual(JPEG)
    })

    it('takes the pictures of NVRs and ANPR cameras: no filename, no type, several per event', async () => {
      const part = (headers: string, bytes: Buffer) => Buffer.concat([Buffer.from(`--b0undary\r\n${headers}\r\n\r\n`), bytes, Buffer.from('\r\n')])
      const xmlPart = part('Content-Disposition: form-data; name="fielddetection"\r\nContent-Type: application/xml', fixture('fielddetection.xml'))
      // An NVR's picture part: a name and a type, no filename, larger than an XML part may be. It
      // is a picture (over this office's snapshot limit, so counted and dropped); the event stays.
      const tooLarge = () => metric(/gateway_camera_snapshots_dropped_total\{camera="cam-isapi-01",reason="too_large"\} (\d+)/)
      const wasTooLarge = await tooLarge()
      let before = lastSeq()
      const nvr = await camera().post(
        Buffer.concat([xmlPart, part('Content-Disposition: form-data; name="Picture"\r\nContent-Type: image/jpeg', Buffer.concat([JPEG, Buffer.alloc(150 * 1024)])), Buffer.from('--b0undary--\r\n')]),
        'multipart/form-data; boundary=b0undary',
      )
      expect(nvr.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['intrusion'])
      expect(await tooLarge()).toBe(wasTooLarge + 1)

      // An ANPR camera's five pictures as application/octet-stream without filenames: the first is kept.
      const pictures = [1, 2, 3, 4, 5].map((i) => Buffer.concat([JPEG, Buffer.alloc(i, i)]))
      before = lastSeq()
      const anpr = await camera().post(
        Buffer.concat([xmlPart, ...pictures.map((p, i) => part(`Content-Disposition: form-data; name="picture${i}"\r\nContent-Type: application/octet-stream`, p)), Buffer.from('--b0undary--\r\n')]),
        'multipart/form-data; boundary=b0undary',
      )
      expect(anpr.status).toBe(200)
      const [event] = committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera')
      expect(readFileSync(join(gateway.config.gateway.dataDir, event.payload.snapshot as string))).toEqual(pictures[0])

      // Past the 16-part limit the event already read is kept; the parts after it are not read.
      before = lastSeq()
      const many = await camera().post(
        Buffer.concat([xmlPart, ...Array.from({ length: 20 }, (_, i) => part(`Content-Disposition: form-data; name="p${i}"\r\nContent-Type: application/octet-stream`, pictures[i % 5])), Buffer.from('--b0undary--\r\n')]),
        'multipart/form-data; boundary=b0undary',
      )
      expect(many.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['intrusion'])
    })

    it('takes the JSON form of newer firmware, alone or as the event part of a multipart body', async () => {
      const before = lastSeq()
      expect((await camera().post(fixture('density.json'), 'application/json')).status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera').map((r) => r.payload)).toEqual([
        { event: 'crowding', confidence: 1, channel: 3, region: 'Market square (human)' },
      ])
      const part = (headers: string, bytes: Buffer) => Buffer.concat([Buffer.from(`--b0undary\r\n${headers}\r\n\r\n`), bytes, Buffer.from('\r\n')])
      await expectDensityPush(
        Buffer.concat([
          part('Content-Disposition: form-data; name="personDensityDetection"\r\nContent-Type: application/json', fixture('density.json')),
          part('Content-Disposition: form-data; name="person_density_image"; filename="density.jpg"\r\nContent-Type: image/jpeg', JPEG),
          Buffer.from('--b0undary--\r\n'),
        ]),
        'multipart/form-data; boundary=b0undary',
      )
    })

    /** Posts a density event with its picture; the event is committed with the picture kept. */
    async function expectDensityPush(body: Buffer, contentType: string) {
      const before = lastSeq()
      expect((await camera().post(body, contentType)).status).toBe(200)
      const [event] = committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera')
      expect(event.payload).toMatchObject({ event: 'crowding', region: 'Market square (human)' })
      expect(readFileSync(join(gateway.config.gateway.dataDir, event.payload.snapshot as string))).toEqual(JPEG)
    }

    it('reads parts without Content-Disposition, as Hikvision\'s density guide sends them, and multipart/mixed', async () => {
      const part = (headers: string, bytes: Buffer) => Buffer.concat([Buffer.from(`--MIME_boundary\r\n${headers}\r\n\r\n`), bytes, Buffer.from('\r\n')])
      // The vendor's shape: a JSON part and a picture named only by Content-ID.
      await expectDensityPush(
        Buffer.concat([
          part(`Content-Type: application/json\r\nContent-Length: ${fixture('density.json').length}`, fixture('density.json')),
          part(`Content-Type: image/jpeg\r\nContent-Length: ${JPEG.length}\r\nContent-ID: background_image`, JPEG),
          Buffer.from('--MIME_boundary--\r\n'),
        ]),
        'multipart/form-data; boundary=MIME_boundary',
      )

      // An event stream's part, pushed as it comes: multipart/mixed, a bare XML part.
      const before = lastSeq()
      const mixed = await camera().post(
        Buffer.concat([part('Content-Type: application/xml; charset="UTF-8"', fixture('fielddetection.xml')), Buffer.from('--MIME_boundary--\r\n')]),
        'multipart/mixed; boundary=MIME_boundary',
      )
      expect(mixed.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['intrusion'])
    })

    it('keeps an event type it does not know, under its own normalised name', async () => {
      const before = lastSeq()
      const res = await camera().post(fixture('audioexception.xml'), 'application/xml')
      expect(res.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['audioexception'])
    })

    it('acknowledges the videoloss/inactive heartbeat without storing anything', async () => {
      const before = lastSeq()
      const heartbeats = await metric(/gateway_camera_heartbeats_total\{camera="cam-isapi-01"\} (\d+)/)
      const res = await camera().post(fixture('videoloss-heartbeat.xml'), 'application/xml')
      expect(res.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01')).toEqual([])
      expect(await metric(/gateway_camera_heartbeats_total\{camera="cam-isapi-01"\} (\d+)/)).toBe(heartbeats + 1)
    })

    it('plays the intrusion-at-night scenario: one event per post, one alert, the end acknowledged', async () => {
      const before = lastSeq()
      const results = await intrusionAtNight(camera({ deviceId: 'cam-isapi-03' }), JPEG)
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
      const rows = committedSince(before, 'cam-isapi-03')
      expect(rows.filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['intrusion', 'intrusion', 'intrusion'])
      // The camera's cooldown turns three posts of one intrusion into one alert.
      expect(rows.filter((r) => r.kind === 'alert').map((r) => r.payload.type)).toEqual(['camera.intrusion'])
      expect(rows.filter((r) => r.kind === 'camera' && r.payload.snapshot !== undefined)).toHaveLength(1)
    })

    it('holds the camera\'s answer while the commit has not called back', async () => {
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      let reached!: () => void
      const committing = new Promise<void>((resolve) => (reached = resolve))
      const appendCb = gateway.outbox.appendCb.bind(gateway.outbox)
      const spy = vi.spyOn(gateway.outbox, 'appendCb').mockImplementationOnce((envelopes, state, done, transmission) => {
        reached()
        appendCb(envelopes, state, (err) => void held.then(() => done(err)), transmission)
      })
      try {
        let answered = false
        const first = camera().alarm({ eventType: 'smokeDetection', at: new Date() }).then((res) => {
          answered = true
          return res
        })
        await committing
        // A later request served start to finish proves the server moved on; the first is still waiting.
        expect((await camera().heartbeat()).status).toBe(200)
        expect(answered).toBe(false)
        release()
        expect((await first).status).toBe(200)
      } finally {
        release()
        spy.mockRestore()
      }
    })

    it('answers 503 and keeps no snapshot when the commit fails, so the camera retries', async () => {
      const spy = vi.spyOn(gateway.pipeline, 'acceptAsync').mockRejectedValueOnce(new Error('disk I/O error'))
      try {
        const before = lastSeq()
        const files = snapshotFiles()
        const res = await camera().alarm({ eventType: 'smokeDetection', at: new Date(), snapshot: JPEG })
        expect(res.status).toBe(503)
        expect(res.headers['retry-after']).toBe('5')
        expect(spy).toHaveBeenCalledTimes(1)
        expect(committedSince(before, 'cam-isapi-01')).toEqual([])
        // Nothing new on disk (the quota may have made room by evicting an older one).
        expect(snapshotFiles().filter((f) => !files.includes(f))).toEqual([])
      } finally {
        spy.mockRestore()
      }
    })
  })

  describe('snapshots', () => {
    it('drops a snapshot over the per-snapshot limit, counts it, and keeps the event', async () => {
      const before = lastSeq()
      const dropped = () => metric(/gateway_camera_snapshots_dropped_total\{camera="cam-isapi-01",reason="too_large"\} (\d+)/)
      const was = await dropped()
      const big = Buffer.concat([JPEG, Buffer.alloc(MAX_SNAPSHOT_BYTES)])
      const res = await camera().alarm({ eventType: 'loitering', at: new Date(), snapshot: big })
      expect(res.status).toBe(200)
      const [event] = committedSince(before, 'cam-isapi-01').filter((r) => r.kind === 'camera')
      expect(event.payload).toMatchObject({ event: 'loitering' })
      expect(event.payload.snapshot).toBeUndefined()
      expect(await dropped()).toBe(was + 1)
      expect(lines.some((l) => l.includes('GW_CAMERA_SNAPSHOT_DROPPED') && l.includes('"reason":"too_large"'))).toBe(true)
    })

    it('drops an image part that is not a JPEG', async () => {
      const before = lastSeq()
      const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')
      const res = await camera().alarm({ eventType: 'VMD', at: new Date(), snapshot: png })
      expect(res.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-01').find((r) => r.kind === 'camera')?.payload).toMatchObject({ event: 'motion' })
      expect(await metric(/gateway_camera_snapshots_dropped_total\{camera="cam-isapi-01",reason="not_jpeg"\} (\d+)/)).toBe(1)
    })

    it('removes the oldest snapshots first to stay within the quota', async () => {
      const refs: string[] = []
      for (let i = 0; i < 5; i++) {
        const before = lastSeq()
        const res = await camera({ deviceId: i % 2 ? 'cam-isapi-01' : 'cam-isapi-03' }).alarm({ eventType: 'smokeDetection', at: new Date(), snapshot: JPEG })
        expect(res.status).toBe(200)
        const event = committedSince(before).find((r) => r.kind === 'camera')
        refs.push(event?.payload.snapshot as string)
      }
      const onDisk = (ref: string) => existsSync(join(gateway.config.gateway.dataDir, ref))
      expect(refs.map(onDisk)).toEqual([false, false, true, true, true])
      expect(snapshotFiles().sort()).toEqual(refs.slice(2).sort())
    })
  })

  describe('refusals', () => {
    // Each case from its own address: a good login no longer clears an address's failures.
    it.each([
      ['no credentials', null, 'unknown', 'missing', '127.0.0.20'],
      ['a wrong password', basicAuthorization('cam-isapi-01', 'not-the-password'), 'cam-isapi-01', 'bad_password', '127.0.0.21'],
      ['an unknown camera', basicAuthorization('cam-isapi-99', PASSWORD), 'unknown', 'unknown_camera', '127.0.0.22'],
      ['an MQTT device\'s login', basicAuthorization('gas-001', 'demo-gas-001-secret'), 'unknown', 'unknown_camera', '127.0.0.23'],
      ['a Bearer token', 'Bearer abcdef', 'unknown', 'malformed', '127.0.0.24'],
    ])('answers %s with 401 and the challenges, counts it, logs it, and stores nothing', async (_name, authorization, source, reason, address) => {
      const before = lastSeq()
      const was = await rejected(source, 'auth_failed')
      const res = await camera({ localAddress: address }).post(fixture('fielddetection.xml'), 'application/xml', authorization)
      expect(res.status).toBe(401)
      // Digest first (a camera takes the first scheme it can), since one camera here uses it.
      expect(res.challenges).toEqual([
        expect.stringMatching(/^Digest realm="GridWatch camera input", qop="auth", algorithm=MD5, nonce="[A-Za-z0-9_-]+", opaque="[A-Za-z0-9_-]+"$/),
        'Basic realm="GridWatch camera input", charset="UTF-8"',
      ])
      expect(await rejected(source, 'auth_failed')).toBe(was + 1)
      expect(committedSince(before)).toEqual([])
      // One line per address and reason per 10 s: repeats are counted, not logged again.
      expect(lines.some((l) => l.includes('GW_CAMERA_AUTH_FAILED') && l.includes(`"address":"${address}"`) && l.includes(`"reason":"${reason}"`))).toBe(true)
      expect(lines.join('\n')).not.toContain('not-the-password')
    })

    it('ends the connection of a refused push with a body over maxBodyBytes, and keeps it for one within', async () => {
      // Raw requests: what matters is the Connection header and whether the socket stays open.
      const refusedWith = (body: Buffer, localAddress: string) =>
        new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
          const req = httpRequest(url, { method: 'POST', localAddress, headers: { 'content-type': 'application/xml', 'content-length': body.length } }, (res) => {
            res.resume()
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
          })
          req.on('error', reject)
          req.end(body)
        })
      // A push with its picture (within maxBodyBytes, 4 MiB here) keeps it: a Digest login's first step.
      expect(await refusedWith(Buffer.alloc(2 * 1024 * 1024, 0x20), '127.0.0.25')).toEqual({ status: 401, connection: 'keep-alive' })
      expect(await refusedWith(Buffer.alloc(5 * 1024 * 1024, 0x20), '127.0.0.26')).toEqual({ status: 401, connection: 'close' })
    })

    it('does not give an address fresh tries when a camera behind the same NAT logs in', async () => {
      const nat = '127.0.0.6'
      const guessing = camera({ localAddress: nat, password: 'guess' })
      const own = camera({ localAddress: nat })
      expect((await guessing.heartbeat()).status).toBe(401)
      expect((await own.heartbeat()).status).toBe(200)
      expect((await guessing.heartbeat()).status).toBe(401)
      expect((await own.heartbeat()).status).toBe(200)
      expect((await guessing.heartbeat()).status).toBe(401)
      expect((await guessing.heartbeat()).status).toBe(429)
      expect((await own.heartbeat()).status).toBe(200)
    })

    it('holds off an address after repeated failures, without locking out a camera already verified', async () => {
      const guessing = camera({ localAddress: '127.0.0.3', password: 'guess' })
      for (let i = 0; i < 3; i++) expect((await guessing.heartbeat()).status).toBe(401)
      const held = await guessing.heartbeat()
      expect(held.status).toBe(429)
      expect(Number(held.headers['retry-after'])).toBeGreaterThan(0)
      expect(await rejected('unknown', 'rate_limited')).toBeGreaterThanOrEqual(1)
      // The right password, already verified from elsewhere, still passes from that address.
      expect((await camera({ localAddress: '127.0.0.3' }).heartbeat()).status).toBe(200)
    })

    it('lets a Digest camera in after the challenge, reusing the nonce, and refuses a replay', async () => {
      const before = lastSeq()
      const digestCamera = camera({ deviceId: 'cam-isapi-04', auth: 'digest' })
      expect((await digestCamera.alarm({ eventType: 'linedetection', at: new Date(), regionId: '2' })).status).toBe(200)
      expect((await digestCamera.alarm({ eventType: 'linedetection', at: new Date(), regionId: '2' })).status).toBe(200)
      expect(committedSince(before, 'cam-isapi-04').filter((r) => r.kind === 'camera').map((r) => r.payload.event)).toEqual(['line_crossing', 'line_crossing'])

      // A captured Authorization header sent again: the password in it was right, the count is not new.
      const challenge = (await camera({ deviceId: 'cam-isapi-04' }).post(fixture('fielddetection.xml'), 'application/xml', null)).challenges[0]
      const captured = digestAuthorization(challenge, 'cam-isapi-04', PASSWORD, 'POST', '/ISAPI/Event/notification/alert')
      expect((await digestCamera.post(fixture('fielddetection.xml'), 'application/xml', captured)).status).toBe(200)
      const replay = await digestCamera.post(fixture('fielddetection.xml'), 'application/xml', captured)
      expect(replay.status).toBe(401)
      expect(replay.challenges[0]).toMatch(/, stale=true$/)
      expect(await rejected('cam-isapi-04', 'stale_nonce')).toBe(1)
    })

    it('refuses a Digest login with the wrong password, counted for that camera', async () => {
      const was = await rejected('cam-isapi-04', 'auth_failed')
      const res = await camera({ deviceId: 'cam-isapi-04', auth: 'digest', password: 'not-it', localAddress: '127.0.0.4' }).heartbeat()
      expect(res.status).toBe(401)
      expect(await rejected('cam-isapi-04', 'auth_failed')).toBe(was + 1)
      // A Basic login for a Digest camera works too: its scrypt secret is still what Basic checks.
      expect((await camera({ deviceId: 'cam-isapi-04' }).heartbeat()).status).toBe(200)
    })

    it('refuses a pinned camera from another address with 403, and takes it from its own', async () => {
      const before = lastSeq()
      const res = await camera({ deviceId: 'cam-isapi-02' }).post(fixture('fielddetection.xml'), 'application/xml')
      expect(res.status).toBe(403)
      expect(await rejected('cam-isapi-02', 'auth_failed')).toBe(1)
      expect(committedSince(before)).toEqual([])
      const ok = await camera({ deviceId: 'cam-isapi-02', localAddress: '127.0.0.5' }).post(fixture('fielddetection.xml'), 'application/xml')
      expect(ok.status).toBe(200)
      expect(committedSince(before, 'cam-isapi-02').filter((r) => r.kind === 'camera')).toHaveLength(1)
    })

    it.each([
      ['malformed XML', 'malformed.xml', /not well-formed/],
      ['a DOCTYPE with entities', 'entity-expansion.xml', /DOCTYPE is not accepted/],
    ])('answers %s with 400 and a message, counts it and stores nothing', async (_name, file, message) => {
      const before = lastSeq()
      const was = await rejected('cam-isapi-01', 'bad_xml')
      const res = await camera().post(fixture(file), 'application/xml')
      expect(res.status).toBe(400)
      expect(res.body).toMatch(/<statusCode>5<\/statusCode>/)
      expect(res.body).toMatch(message)
      expect(await rejected('cam-isapi-01', 'bad_xml')).toBe(was + 1)
      expect(committedSince(before)).toEqual([])
      expect(lines.some((l) => l.includes('GW_CAMERA_EVENT_INVALID') && l.includes('"reason":"bad_xml"'))).toBe(true)
    })

    it('answers an empty XML body with 400', async () => {
      const was = await rejected('cam-isapi-01', 'bad_xml')
      const res = await camera().post(Buffer.alloc(0), 'application/xml')
      expect(res.status).toBe(400)
      expect(await rejected('cam-isapi-01', 'bad_xml')).toBe(was + 1)
    })

    it('answers a broken multipart body with 400, and one without an XML part too', async () => {
      const was = await rejected('cam-isapi-01', 'bad_multipart')
      const cut = multipartBody('b0undary', 'fielddetection', fixture('fielddetection.xml').toString(), JPEG).subarray(0, 300)
      const broken = await camera().post(cut, 'multipart/form-data; boundary=b0undary')
      expect(broken.status).toBe(400)
      const onlyImage = Buffer.concat([
        Buffer.from('--b0undary\r\nContent-Disposition: form-data; name="img"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'),
        JPEG,
        Buffer.from('\r\n--b0undary--\r\n'),
      ])
      const noXml = await camera().post(onlyImage, 'multipart/form-data; boundary=b0undary')
      expect(noXml.status).toBe(400)
      expect(noXml.body).toContain('no EventNotificationAlert XML or JSON part')
      expect(await rejected('cam-isapi-01', 'bad_multipart')).toBe(was + 2)
    })

    it('answers a body over the limit with 413 and another content type with 415, counted', async () => {
      const oversized = await camera().post(Buffer.alloc(70 * 1024, 0x20), 'application/xml')
      expect(oversized.status).toBe(413)
      expect(await rejected('cam-isapi-01', 'oversized')).toBeGreaterThanOrEqual(1)
      const bigPart = multipartBody('b0undary', 'fielddetection', `<EventNotificationAlert>${' '.repeat(70 * 1024)}</EventNotificationAlert>`, JPEG)
      const was = await rejected('cam-isapi-01', 'oversized')
      expect((await camera().post(bigPart, 'multipart/form-data; boundary=b0undary')).status).toBe(413)
      expect(await rejected('cam-isapi-01', 'oversized')).toBe(was + 1)
      const text = await camera().post(Buffer.from('eventType=VMD'), 'text/plain')
      expect(text.status).toBe(415)
      expect(await rejected('cam-isapi-01', 'unsupported_type')).toBe(1)
    })

    it('answers a multipart body whose parts together pass maxBodyBytes with 413, though each is within it', async () => {
      const before = lastSeq()
      const was = await rejected('cam-isapi-01', 'oversized')
      const part = (headers: string, bytes: Buffer) => Buffer.concat([Buffer.from(`--b0undary\r\n${headers}\r\n\r\n`), bytes, Buffer.from('\r\n')])
      // Three pictures of 1.5 MiB: each under the default 4 MiB, 4.5 MiB together.
      const picture = Buffer.concat([JPEG, Buffer.alloc(1536 * 1024)])
      const body = Buffer.concat([
        part('Content-Disposition: form-data; name="fielddetection"\r\nContent-Type: application/xml', fixture('fielddetection.xml')),
        ...[1, 2, 3].map((i) => part(`Content-Disposition: form-data; name="picture${i}"; filename="${i}.jpg"\r\nContent-Type: image/jpeg`, picture)),
        Buffer.from('--b0undary--\r\n'),
      ])
      const res = await camera().post(body, 'multipart/form-data; boundary=b0undary')
      expect(res.status).toBe(413)
      expect(res.body).toContain('multipart body is larger than 4194304 bytes')
      expect(await rejected('cam-isapi-01', 'oversized')).toBe(was + 1)
      expect(committedSince(before)).toEqual([])
      // The connection was closed with the answer, so the next push is not read as the rest of this body.
      expect((await camera().heartbeat()).status).toBe(200)
    })

    it('keeps an address held off, and a Digest camera\'s nonce good, across a reload of the office config', async () => {
      const guessing = camera({ localAddress: '127.0.0.7', password: 'guess' })
      for (let i = 0; i < 3; i++) expect((await guessing.heartbeat()).status).toBe(401)
      const digestCamera = camera({ deviceId: 'cam-isapi-04', auth: 'digest' })
      expect((await digestCamera.heartbeat()).status).toBe(200)
      const stale = await rejected('cam-isapi-04', 'stale_nonce')
      gateway.reload(gateway.config)
      expect((await guessing.heartbeat()).status).toBe(429)
      // The camera goes on with the nonce it has: no stale=true round trip.
      expect((await digestCamera.heartbeat()).status).toBe(200)
      expect(await rejected('cam-isapi-04', 'stale_nonce')).toBe(stale)
    })

    it('takes a new device list: a removed camera can no longer log in, a restored one can', async () => {
      const input = cameraInput(gateway)
      const devices = gateway.config.devices
      input.replaceDevices(devices.filter((d) => d.id !== 'cam-isapi-03'))
      try {
        expect((await camera({ deviceId: 'cam-isapi-03' }).heartbeat()).status).toBe(401)
      } finally {
        input.replaceDevices(devices)
      }
      expect((await camera({ deviceId: 'cam-isapi-03' }).heartbeat()).status).toBe(200)
    })

    it('is still serving after all of that', async () => {
      expect((await camera().heartbeat()).status).toBe(200)
    })
  })

  describe('camera JSON over MQTT (AI boxes)', () => {
    it('commits the JSON an AI box publishes and raises its alert', async () => {
      const before = lastSeq()
      const box = await connectDevice(gateway.mqtt.port!, 'cam-001')
      clients.push(box)
      const message = { ts: new Date().toISOString(), event: 'smoke', confidence: 0.91, channel: 2, region: 'Old street north gate, zone B', snapshot: 'http://10.20.3.90/snapshots/2026/11/26/0001.jpg' }
      await box.publishAsync('dev/cam-001/camera', JSON.stringify(message), { qos: 1 })
      const rows = committedSince(before, 'cam-001').filter((r) => r.kind !== 'status')
      const { ts: _ts, ...payload } = message
      expect(rows.map((r) => (r.kind === 'alert' ? [r.kind, r.payload.type, r.payload.severity] : [r.kind, r.payload]))).toEqual([
        ['camera', payload],
        ['alert', 'camera.smoke', 'critical'],
      ])
    })

    it.each([
      ['a confidence in percent', { event: 'intrusion', confidence: 87 }, { path: '/confidence' }],
      ['fields the contract does not have', { event: 'intrusion', confidence: 0.87, bbox: [0.1, 0.2, 0.3, 0.4] }, { message: 'unknown field(s): bbox' }],
      ['an event type that is not an Ident', { event: 'line crossing', confidence: 0.9 }, { path: '/event' }],
    ])('nacks %s on cmd/cam-001/nack with the reason, and stores nothing', async (_name, message, problem) => {
      const before = lastSeq()
      const box = await connectDevice(gateway.mqtt.port!, 'cam-001')
      clients.push(box)
      await box.subscribeAsync('cmd/cam-001/nack', { qos: 1 })
      const nack = nextEvent<{ topic: string; payload: Buffer }>((listener) => {
        const on = (topic: string, payload: Buffer) => listener({ topic, payload })
        box.on('message', on)
        return () => box.off('message', on)
      })
      await box.publishAsync('dev/cam-001/camera', JSON.stringify(message), { qos: 1 })
      const body = JSON.parse((await nack).payload.toString()) as { code: string; topic: string; problems: { path: string; message: string }[] }
      expect(body).toMatchObject({ code: 'GW_PAYLOAD_INVALID', topic: 'dev/cam-001/camera' })
      expect(body.problems).toContainEqual(expect.objectContaining(problem))
      expect(committedSince(before, 'cam-001').filter((r) => r.kind !== 'status')).toEqual([])
    })
  })
})

describe('camera input over TLS', () => {
  let gateway: Gateway
  const pki = makeTestPki([])

  beforeAll(async () => {
    gateway = await Gateway.start(await officeWithCameras({ tls: { cert: pki.serverCert, key: pki.serverKey } }), { logger: silentLogger(), processMetrics: false })
  })
  afterAll(async () => {
    await gateway?.stop()
  })

  it('takes a push over HTTPS from a camera that trusts the office CA, and refuses plain HTTP', async () => {
    const port = cameraInput(gateway).port!
    expect(cameraInput(gateway).health().detail).toContain('(TLS)')
    const secure = new IsapiCamera({ url: `https://127.0.0.1:${port}/ISAPI/Event/notification/alert`, deviceId: 'cam-isapi-01', password: PASSWORD, ca: readFileSync(pki.ca) })
    expect((await secure.alarm({ eventType: 'fielddetection', at: new Date(), regionId: '1' })).status).toBe(200)
    const plain = new IsapiCamera({ url: `http://127.0.0.1:${port}/ISAPI/Event/notification/alert`, deviceId: 'cam-isapi-01', password: PASSWORD })
    await expect(plain.heartbeat()).rejects.toThrow()
  })
})
