/**
 * ISAPI EventNotificationAlert → GridWatch camera message: parsing (both namespaces, real-camera
 * shapes from test/fixtures/isapi), the event type mapping, heartbeats, confidence and time.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { checker } from '../../contracts/validate.ts'
import { DeviceCamera } from '../../contracts/device-messages.ts'
import { gridwatchEvent, ISAPI_EVENT_TYPES, MAX_XML_BYTES, parseEventNotification, toCameraMessage, type IsapiAlert } from '../../gateway/inputs/camera/isapi.ts'
import { eventNotificationXml } from '../../devices/camera/isapi-camera.ts'

const fixture = (name: string) => readFileSync(new URL(`../fixtures/isapi/${name}`, import.meta.url))
const options = { defaultConfidence: 1, utcOffsetMinutes: 480 }
const validCamera = checker(DeviceCamera)

function parsed(name: string): IsapiAlert {
  const result = parseEventNotification(fixture(name))
  if (!result.ok) throw new Error(result.message)
  return result.alert
}

function mapped(alert: IsapiAlert, opts: Parameters<typeof toCameraMessage>[1] = options) {
  const out = toCameraMessage(alert, opts)
  if (out.heartbeat) throw new Error('expected an event, got a heartbeat')
  return out.message
}

describe('ISAPI EventNotificationAlert parsing', () => {
  it('reads an intrusion (fielddetection) in the hikvision.com namespace with its region and target', () => {
    expect(parsed('fielddetection.xml')).toEqual({
      eventType: 'fielddetection',
      eventState: 'active',
      dateTime: '2026-11-26T02:14:09+08:00',
      channel: 1,
      channelName: 'North gate',
      description: 'fielddetection alarm',
      activePostCount: 1,
      ipAddress: '10.20.3.64',
      macAddress: '44:a6:42:a6:40:0d',
      regions: ['3'],
      targets: ['human'],
    })
  })

  it('reads the isapi.org namespace and a 0-100 confidence', () => {
    const alert = parsed('linedetection.xml')
    expect(alert).toMatchObject({ eventType: 'linedetection', channel: 2, regions: ['1'], targets: ['vehicle'], confidence: 0.87 })
  })

  it('takes dynChannelID when there is no channelID (NVR channels)', () => {
    expect(parsed('fire-detection.xml').channel).toBe(2)
  })

  it('reads a `duration` event as the event its relationEvent names', () => {
    expect(parsed('duration-fielddetection.xml')).toMatchObject({ eventType: 'fielddetection', channel: 1, channelName: 'Canteen yard' })
    expect(mapped(parsed('duration-fielddetection.xml')).event).toBe('intrusion')
  })

  it('takes the target from a top-level targetType, and reads an offset with a one-digit hour', () => {
    const alert = parsed('nvr-vmd-targettype.xml')
    expect(alert).toMatchObject({ eventType: 'VMD', channel: 5, targets: ['human'] })
    expect(mapped(alert)).toMatchObject({ event: 'motion', region: 'Camera 05 (human)', ts: '2026-11-26T06:56:42-06:00' })
  })

  it('reads the JSON form of newer firmware, bare or wrapped in EventNotificationAlert', () => {
    const density = parsed('density.json')
    expect(density).toMatchObject({ eventType: 'personDensityDetection', eventState: 'active', channel: 3, channelName: 'Market square', targets: ['human'] })
    expect(mapped(density)).toMatchObject({ event: 'crowding', channel: 3, region: 'Market square (human)', ts: '2026-11-26T19:30:08+08:00' })
    expect(parsed('accesscontroller.json')).toMatchObject({ eventType: 'AccessControllerEvent', activePostCount: 1, ipAddress: '10.20.3.90' })
    expect(mapped(parsed('accesscontroller.json')).event).toBe('accesscontrollerevent')
  })

  it.each([
    ['{"eventType": "VMD", ', /JSON could not be parsed/],
    ['["VMD"]', /not an object/],
    ['{"eventState": "active"}', /no eventType/],
    ['{"__proto__": {"eventType": "VMD"}}', /no eventType/],
  ])('refuses the JSON %s', (json, message) => {
    const result = parseEventNotification(json)
    expect(result.ok).toBe(false)
    expect(!result.ok && result.message).toMatch(message)
  })

  it('reads a heartbeat without an XML declaration in the old ver10 namespace', () => {
    expect(parsed('videoloss-heartbeat.xml')).toMatchObject({ eventType: 'videoloss', eventState: 'inactive', activePostCount: 0 })
  })

  it('reads several regions of one event', () => {
    const xml = eventNotificationXml({ url: 'http://x', deviceId: 'cam', password: 'p' }, { eventType: 'VMD', regionId: '3' }).replace(
      '</DetectionRegionList>',
      '<DetectionRegionEntry><regionID>5</regionID><sensitivityLevel>50</sensitivityLevel></DetectionRegionEntry></DetectionRegionList>',
    )
    const result = parseEventNotification(xml)
    expect(result.ok && result.alert.regions).toEqual(['3', '5'])
  })

  it.each([
    ['malformed.xml', /not well-formed: .*eventState/],
    ['entity-expansion.xml', /DOCTYPE is not accepted/],
  ])('refuses %s with a message that says why', (name, message) => {
    const result = parseEventNotification(fixture(name))
    expect(result.ok).toBe(false)
    expect(!result.ok && result.message).toMatch(message)
  })

  it.each([
    ['another document', '<ResponseStatus><statusCode>1</statusCode></ResponseStatus>', /not an EventNotificationAlert/],
    ['no eventType', '<EventNotificationAlert><eventState>active</eventState></EventNotificationAlert>', /no eventType/],
    ['an unknown eventState', '<EventNotificationAlert><eventType>VMD</eventType><eventState>on</eventState></EventNotificationAlert>', /neither active nor inactive/],
    ['an empty body', '', /not an EventNotificationAlert|not well-formed/],
    ['too deep a document', `<EventNotificationAlert>${'<a>'.repeat(40)}${'</a>'.repeat(40)}</EventNotificationAlert>`, /could not be parsed/],
  ])('refuses %s', (_name, xml, message) => {
    const result = parseEventNotification(xml)
    expect(result.ok).toBe(false)
    expect(!result.ok && result.message).toMatch(message)
  })

  it('refuses a document over the size limit before parsing it', () => {
    const big = `<EventNotificationAlert><eventType>VMD</eventType><eventDescription>${'x'.repeat(MAX_XML_BYTES)}</eventDescription></EventNotificationAlert>`
    const result = parseEventNotification(big)
    expect(!result.ok && result.message).toMatch(/larger than/)
  })

  it('decodes the five XML entities and nothing more', () => {
    const result = parseEventNotification('<EventNotificationAlert><eventType>VMD</eventType><channelName>Gate &amp; yard &lt;B&gt;</channelName></EventNotificationAlert>')
    expect(result.ok && result.alert.channelName).toBe('Gate & yard <B>')
  })
})

describe('ISAPI → GridWatch camera message', () => {
  it('maps an intrusion at night to the camera message an AI box would send', () => {
    const message = mapped(parsed('fielddetection.xml'))
    expect(message).toEqual({ event: 'intrusion', confidence: 1, channel: 1, region: 'North gate, region 3 (human)', ts: '2026-11-26T02:14:09+08:00' })
    expect(validCamera.check(message)).toBe(true)
  })

  it('keeps the camera\'s own confidence when it sends one, and the default otherwise', () => {
    expect(mapped(parsed('linedetection.xml')).confidence).toBe(0.87)
    expect(mapped(parsed('fire-detection.xml'), { ...options, defaultConfidence: 0.8 }).confidence).toBe(0.8)
  })

  it.each([
    ['fielddetection', 'intrusion'],
    ['regionEntrance', 'intrusion'],
    ['regionExiting', 'region_exiting'],
    ['linedetection', 'line_crossing'],
    ['fireDetection', 'fire'],
    ['smokeDetection', 'smoke'],
    ['loitering', 'loitering'],
    ['group', 'crowding'],
    ['personDensityDetection', 'crowding'],
    ['PeopleCounting', 'people_counting'],
    ['VMD', 'motion'],
    ['tamperdetection', 'tamper'],
    ['shelteralarm', 'tamper'],
  ])('maps %s to %s', (isapi, gridwatch) => {
    expect(gridwatchEvent(isapi)).toBe(gridwatch)
  })

  it('maps every entry of its table to a valid Ident', () => {
    for (const event of Object.values(ISAPI_EVENT_TYPES)) expect(validCamera.check({ event, confidence: 1 })).toBe(true)
  })

  it('keeps an event type it does not know, normalised, instead of dropping it', () => {
    const message = mapped(parsed('audioexception.xml'))
    expect(message).toMatchObject({ event: 'audioexception', region: 'North gate' })
    expect(validCamera.check(message)).toBe(true)
    expect(gridwatchEvent('Face Capture/2')).toBe('face_capture_2')
    expect(gridwatchEvent('***')).toBe('other')
    expect(validCamera.check({ event: gridwatchEvent('x'.repeat(128)), confidence: 1 })).toBe(true)
  })

  it('lets the office map a type its own way, before the built-in table', () => {
    expect(gridwatchEvent('PIR', { pir: 'intrusion' })).toBe('intrusion')
    expect(gridwatchEvent('VMD', { VMD: 'intrusion' })).toBe('intrusion')
  })

  it('makes a heartbeat of eventState inactive and of eventType heartBeat, never an event', () => {
    expect(toCameraMessage(parsed('videoloss-heartbeat.xml'), options)).toEqual({ heartbeat: true })
    expect(toCameraMessage({ ...parsed('fielddetection.xml'), eventState: 'inactive' }, options)).toEqual({ heartbeat: true })
    expect(toCameraMessage({ ...parsed('fielddetection.xml'), eventType: 'heartBeat' }, options)).toEqual({ heartbeat: true })
  })

  it('gives a dateTime without an offset the office\'s offset, and drops one it cannot read', () => {
    const alert = parsed('fire-detection.xml')
    expect(mapped({ ...alert, dateTime: '2026-11-26T03:02:51' }).ts).toBe('2026-11-26T03:02:51+08:00')
    expect(mapped({ ...alert, dateTime: '2026-11-26T03:02:51' }, { ...options, utcOffsetMinutes: -330 }).ts).toBe('2026-11-26T03:02:51-05:30')
    expect(mapped({ ...alert, dateTime: '26/11/2026 03:02' }).ts).toBeUndefined()
  })

  it('keeps the region within the envelope\'s 128 characters', () => {
    const message = mapped({ ...parsed('fielddetection.xml'), channelName: 'n'.repeat(300) })
    expect(message.region).toHaveLength(128)
    expect(validCamera.check(message)).toBe(true)
  })
})
