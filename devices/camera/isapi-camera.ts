/**
 * A Hikvision-style camera that pushes ISAPI event notifications to its alarm host (the gateway's
 * camera input): an `EventNotificationAlert` XML alone, or multipart/form-data with the XML part
 * named after the event and a JPEG snapshot part, with HTTP Basic credentials. For tests, the demo
 * and `npm run devices`.
 */
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'

/** The smallest baseline JPEG browsers decode (8×8 grey, 159 bytes): a stand-in snapshot. */
export const TINY_JPEG = Buffer.from(
  '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/' +
    'wAALCAAIAAgBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAAP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AP//Z',
  'base64',
)

export interface IsapiCameraOptions {
  /** Full URL of the alarm host, e.g. https://gateway:8443/ISAPI/Event/notification/alert */
  url: string
  deviceId: string
  password: string
  /** CA (PEM) to trust for an https:// URL with a private CA. */
  ca?: string | Buffer
  ipAddress?: string
  macAddress?: string
  channelName?: string
  /** The camera clock's offset from UTC in minutes (China: 480). */
  utcOffsetMinutes?: number
  /** How it logs in: Basic on every request (default), or Digest after the gateway's challenge. */
  auth?: 'basic' | 'digest'
  /** Local address to send from (tests use 127.0.0.x to look like different cameras). */
  localAddress?: string
  /** Namespace of the XML: newer firmware says isapi.org, most still say hikvision.com. */
  namespace?: string
}

export interface Alarm {
  /** ISAPI eventType: fielddetection, linedetection, fireDetection, VMD, ... */
  eventType: string
  eventState?: 'active' | 'inactive'
  at?: Date
  channel?: number
  activePostCount?: number
  regionId?: string
  /** detectionTarget: human, vehicle */
  target?: string
  /** 0-100, as smart events carry it; left out when absent, as most events do. */
  confidence?: number
  description?: string
  /** JPEG bytes; sent as the second part of a multipart body. */
  snapshot?: Buffer
}

export interface PushResult {
  status: number
  headers: IncomingHttpHeaders
  /** Every WWW-Authenticate value apart (Node joins repeated headers into one string). */
  challenges: string[]
  body: string
}

export class IsapiCamera {
  private posts = new Map<string, number>()
  private digest: { challenge: string; nc: number } | undefined

  constructor(readonly options: IsapiCameraOptions) {}

  /** One alarm, as the camera posts it (multipart when there is a snapshot). */
  alarm(alarm: Alarm): Promise<PushResult> {
    const key = `${alarm.eventType}:${alarm.channel ?? 1}`
    // activePostCount: how many times this event has been posted, from 1 (ISAPI).
    const count = alarm.activePostCount ?? (this.posts.get(key) ?? 0) + 1
    this.posts.set(key, count)
    const xml = eventNotificationXml(this.options, { ...alarm, activePostCount: count })
    if (!alarm.snapshot) return this.post(Buffer.from(xml), 'application/xml; charset="UTF-8"')
    const boundary = `boundary${randomBytes(8).toString('hex')}`
    return this.post(multipartBody(boundary, alarm.eventType, xml, alarm.snapshot), `multipart/form-data; boundary=${boundary}`)
  }

  /** The videoloss/inactive heartbeat firmware 5.5+ sends every 10 s. */
  heartbeat(at = new Date()): Promise<PushResult> {
    return this.alarm({ eventType: 'videoloss', eventState: 'inactive', at, activePostCount: 0, description: 'videoloss alarm' })
  }

  /** Any body, any Content-Type; `authorization` overrides the login (null: none). For tests of what is refused. */
  post(body: Buffer, contentType: string, authorization?: string | null): Promise<PushResult> {
    if (authorization !== undefined) return this.send(body, contentType, authorization)
    if (this.options.auth === 'digest') return this.postDigest(body, contentType)
    return this.send(body, contentType, basicAuthorization(this.options.deviceId, this.options.password))
  }

  /**
   * As a camera does it (RFC 7616): reuse the last nonce with a growing nonce count; on a 401
   * with a fresh (or stale=true) challenge, answer that one once.
   */
  private async postDigest(body: Buffer, contentType: string): Promise<PushResult> {
    const path = new URL(this.options.url).pathname
    let res: PushResult | undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      const header = this.digest
        ? digestAuthorization(this.digest.challenge, this.options.deviceId, this.options.password, 'POST', path, ++this.digest.nc)
        : null
      res = await this.send(body, contentType, header)
      const offered = res.challenges.find((c) => /^Digest\s/i.test(c))
      if (res.status !== 401 || !offered) return res
      // Credentials that were computed afresh and still refused are wrong: do not loop.
      if (header !== null && !/stale=true/i.test(offered) && attempt > 0) return res
      this.digest = { challenge: offered, nc: 0 }
    }
    return res!
  }

  private send(body: Buffer, contentType: string, authorization: string | null): Promise<PushResult> {
    const url = new URL(this.options.url)
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest
    const headers: Record<string, string | number> = { 'content-type': contentType, 'content-length': body.length }
    if (authorization !== null) headers.authorization = authorization
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers,
          timeout: 10_000,
          ...(this.options.ca ? { ca: this.options.ca } : {}),
          ...(this.options.localAddress ? { localAddress: this.options.localAddress } : {}),
        },
        (res) => {
          const chunks: Buffer[] = []
          const challenges = res.rawHeaders.filter((_v, i, all) => i % 2 === 1 && all[i - 1].toLowerCase() === 'www-authenticate')
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, challenges, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error('camera push timed out')))
      req.on('error', reject)
      req.end(body)
    })
  }
}

/**
 * The demo scenario "an intrusion at night": a heartbeat, then intrusion detection in region 3
 * at 02:14 local time, posted three times while the person stays (activePostCount 1..3, the first
 * with a snapshot), then the event's end (inactive).
 */
export async function intrusionAtNight(camera: IsapiCamera, snapshot: Buffer, day = new Date()): Promise<PushResult[]> {
  const offset = camera.options.utcOffsetMinutes ?? 480
  const local = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 2, 14, 9) - offset * 60_000)
  const results = [await camera.heartbeat(local)]
  for (let i = 0; i < 3; i++) {
    const at = new Date(local.getTime() + 1000 + i * 1000)
    results.push(await camera.alarm({ eventType: 'fielddetection', at, regionId: '3', target: 'human', ...(i === 0 ? { snapshot } : {}) }))
  }
  results.push(await camera.alarm({ eventType: 'fielddetection', eventState: 'inactive', at: new Date(local.getTime() + 10_000), regionId: '3' }))
  return results
}

export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}

/** A camera's answer to a Digest challenge (RFC 7616, MD5, qop=auth). */
export function digestAuthorization(challenge: string, user: string, password: string, method: string, uri: string, nc = 1): string {
  const param = (name: string) => new RegExp(`${name}="([^"]*)"`, 'i').exec(challenge)?.[1]
  const realm = param('realm')
  const nonce = param('nonce')
  if (realm === undefined || nonce === undefined) throw new Error('not a Digest challenge')
  const opaque = param('opaque')
  const md5 = (text: string) => createHash('md5').update(text).digest('hex')
  const cnonce = randomBytes(8).toString('hex')
  const ncText = nc.toString(16).padStart(8, '0')
  const response = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:${ncText}:${cnonce}:auth:${md5(`${method}:${uri}`)}`)
  return (
    `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", algorithm=MD5, qop=auth, ` +
    `nc=${ncText}, cnonce="${cnonce}", response="${response}"${opaque !== undefined ? `, opaque="${opaque}"` : ''}`
  )
}

/** ISAPI dateTime: local time with the camera's offset, 2017-07-19T10:06:41+08:00. */
export function isapiDateTime(at: Date, utcOffsetMinutes: number): string {
  const local = new Date(at.getTime() + utcOffsetMinutes * 60_000).toISOString().slice(0, 19)
  const abs = Math.abs(utcOffsetMinutes)
  return `${local}${utcOffsetMinutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
}

export function eventNotificationXml(camera: IsapiCameraOptions, alarm: Alarm): string {
  const ns = camera.namespace ?? 'http://www.hikvision.com/ver20/XMLSchema'
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<EventNotificationAlert version="2.0" xmlns="${ns}">`,
    `<ipAddress>${camera.ipAddress ?? '10.20.3.64'}</ipAddress>`,
    '<portNo>80</portNo>',
    '<protocol>HTTP</protocol>',
    `<macAddress>${camera.macAddress ?? '44:a6:42:00:00:01'}</macAddress>`,
    `<channelID>${alarm.channel ?? 1}</channelID>`,
    `<dateTime>${isapiDateTime(alarm.at ?? new Date(), camera.utcOffsetMinutes ?? 480)}</dateTime>`,
    `<activePostCount>${alarm.activePostCount ?? 1}</activePostCount>`,
    `<eventType>${esc(alarm.eventType)}</eventType>`,
    `<eventState>${alarm.eventState ?? 'active'}</eventState>`,
    `<eventDescription>${esc(alarm.description ?? `${alarm.eventType} alarm`)}</eventDescription>`,
  ]
  if (camera.channelName) lines.push(`<channelName>${esc(camera.channelName)}</channelName>`)
  if (alarm.regionId !== undefined) {
    lines.push(
      '<DetectionRegionList>',
      '<DetectionRegionEntry>',
      `<regionID>${esc(alarm.regionId)}</regionID>`,
      '<sensitivityLevel>50</sensitivityLevel>',
      '<RegionCoordinatesList>',
      ...[
        [671, 977],
        [489, 998],
        [485, 869],
        [690, 892],
      ].map(([x, y]) => `<RegionCoordinates><positionX>${x}</positionX><positionY>${y}</positionY></RegionCoordinates>`),
      '</RegionCoordinatesList>',
      ...(alarm.target ? [`<detectionTarget>${esc(alarm.target)}</detectionTarget>`] : []),
      ...(alarm.confidence !== undefined ? [`<confidence>${alarm.confidence}</confidence>`] : []),
      '</DetectionRegionEntry>',
      '</DetectionRegionList>',
    )
  }
  if (alarm.snapshot) lines.push('<detectionPictureTransType>binary</detectionPictureTransType>', '<detectionPicturesNumber>1</detectionPicturesNumber>')
  lines.push('</EventNotificationAlert>', '')
  return lines.join('\r\n')
}

/**
 * The body a camera posts with a picture: the XML part named after the event type, then the JPEG
 * part named `<eventType>Image`, each with its own Content-Length, as Hikvision firmware does.
 */
export function multipartBody(boundary: string, eventType: string, xml: string, jpeg: Buffer): Buffer {
  const xmlBytes = Buffer.from(xml)
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${eventType}"\r\nContent-Type: application/xml; charset="UTF-8"\r\nContent-Length: ${xmlBytes.length}\r\n\r\n`,
    ),
    xmlBytes,
    Buffer.from(
      `\r\n--${boundary}\r\nContent-Disposition: form-data; name="${eventType}Image"; filename="${eventType}Image.jpg"\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`,
    ),
    jpeg,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ])
}

function esc(text: string): string {
  return text.replace(/[<>&]/g, (c) => (c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&amp;'))
}
