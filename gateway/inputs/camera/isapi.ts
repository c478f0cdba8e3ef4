/**
 * Uplink converter for ISAPI event notifications: an `EventNotificationAlert` XML document (as a
 * Hikvision camera or NVR posts it to its alarm host) becomes a GridWatch camera message, the same
 * JSON an AI box publishes on `dev/{id}/camera`. Pure: no I/O, no clock.
 *
 * Field names are ISAPI's (Hikvision "Device Network SDK" developer guides, XML_EventNotificationAlert_*).
 * Both namespaces cameras use are accepted (http://www.hikvision.com/ver20/XMLSchema,
 * http://www.isapi.org/ver20/XMLSchema, and the ver10 ones of old firmware): prefixes are dropped
 * and only element names are read.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import type { DeviceCamera } from '../../../contracts/device-messages.ts'

/** An EventNotificationAlert is 1-3 KB; a large NVR one with many regions stays far below this. */
export const MAX_XML_BYTES = 64 * 1024

/** ISAPI eventType (compared lowercased) → GridWatch camera event. */
export const ISAPI_EVENT_TYPES: Readonly<Record<string, string>> = {
  fielddetection: 'intrusion', // intrusion detection
  regionentrance: 'intrusion', // region entrance detection: entering a guarded area
  regionexiting: 'region_exiting',
  linedetection: 'line_crossing', // line crossing detection (tripwire)
  firedetection: 'fire', // thermal cameras
  fireandsmokedetection: 'fire',
  smokedetection: 'smoke',
  smokeandfiredetection: 'fire',
  loitering: 'loitering',
  group: 'crowding', // "people gathering"
  persondensitydetection: 'crowding',
  crowddetection: 'crowding',
  peoplecounting: 'people_counting', // a periodic count, not an alarm by itself
  vmd: 'motion', // video motion detection
  videoloss: 'video_loss',
  tamperdetection: 'tamper', // video tampering
  shelteralarm: 'tamper', // old firmware's name for the same
  unattendedbaggage: 'unattended_object',
  attendedbaggage: 'object_removed',
  parking: 'parking',
  rapidmove: 'rapid_move',
  scenechangedetection: 'scene_change',
}

/** What the camera said, in ISAPI terms, before any GridWatch meaning is given to it. */
export interface IsapiAlert {
  eventType: string
  /** ISAPI: "active" while the event lasts; "inactive" for heartbeats and event ends. */
  eventState: 'active' | 'inactive'
  dateTime?: string
  channel?: number
  channelName?: string
  description?: string
  activePostCount?: number
  ipAddress?: string
  macAddress?: string
  /** `regionID`s of DetectionRegionList/DetectionRegionEntry that fired. */
  regions: string[]
  /** `detectionTarget` (human, vehicle, ...) where the camera names one. */
  targets: string[]
  /** 0..1 when the document carries a `confidence` (0-100 on Hikvision smart events). */
  confidence?: number
}

export type IsapiParseResult = { ok: true; alert: IsapiAlert } | { ok: false; message: string }

// Values stay strings (parseTagValue: false) so a channelName "007" or a MAC is not turned into a
// number; attributes are not needed. Entities: fast-xml-parser v5 decodes only the five XML ones
// and never expands DOCTYPE entities; a DOCTYPE is refused before parsing anyway.
const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  maxNestedTags: 24,
  isArray: (name) => name === 'DetectionRegionEntry' || name === 'RegionCoordinates' || name === 'Duration',
})

/**
 * Reads an EventNotificationAlert, XML or JSON: newer firmware (access control, the AI Open
 * Platform, density and thermometry events) can post the same document as JSON, with the XML
 * element names as keys, either bare or under `EventNotificationAlert`.
 */
export function parseEventNotification(body: Buffer | string): IsapiParseResult {
  const text = (typeof body === 'string' ? body : body.toString('utf8')).replace(/^\uFEFF/, '')
  if (Buffer.byteLength(text) > MAX_XML_BYTES) return fail(`the document is larger than ${MAX_XML_BYTES} bytes`)
  const doc = /^\s*[[{]/.test(text) ? parseJson(text) : parseXml(text)
  if (!doc.ok) return doc
  return readAlert(doc.doc)
}

function parseJson(text: string): { ok: true; doc: Record<string, unknown> } | { ok: false; message: string } {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return fail(`JSON could not be parsed: ${(err as Error).message}`)
  }
  if (!isRecord(doc)) return fail('the JSON document is not an object')
  // Bare or wrapped: {"eventType": ...} or {"EventNotificationAlert": {"eventType": ...}}.
  return { ok: true, doc: isRecord(doc.EventNotificationAlert) ? doc : { EventNotificationAlert: doc } }
}

function parseXml(text: string): { ok: true; doc: Record<string, unknown> } | { ok: false; message: string } {
  // ISAPI documents never carry a DTD; one here can only be an entity-expansion or XXE attempt.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) return fail('XML with a DOCTYPE is not accepted')
  const valid = XMLValidator.validate(text)
  if (valid !== true) return fail(`XML is not well-formed: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`)
  try {
    return { ok: true, doc: parser.parse(text) as Record<string, unknown> }
  } catch (err) {
    return fail(`XML could not be parsed: ${(err as Error).message}`)
  }
}

function readAlert(doc: Record<string, unknown>): IsapiParseResult {
  const root = doc.EventNotificationAlert
  if (!isRecord(root)) return fail('the document is not an EventNotificationAlert')
  let eventType = str(root.eventType)
  if (!eventType) return fail('EventNotificationAlert has no eventType')
  // Newer firmware reports a smart event that lasts as `duration`, naming the event itself in
  // DurationList/Duration/relationEvent: that is the event (an intrusion, not "a duration").
  if (eventType.toLowerCase() === 'duration' && isRecord(root.DurationList)) {
    const related = asArray(root.DurationList.Duration).map((d) => (isRecord(d) ? str(d.relationEvent) : undefined)).find((e) => e !== undefined)
    if (related) eventType = related
  }
  if (eventType.length > 128) return fail('eventType is longer than 128 characters')
  const state = (str(root.eventState) ?? 'active').toLowerCase()
  if (state !== 'active' && state !== 'inactive') return fail(`eventState "${state}" is neither active nor inactive`)

  const entries = isRecord(root.DetectionRegionList) ? asArray(root.DetectionRegionList.DetectionRegionEntry) : []
  const regions: string[] = []
  const targets: string[] = []
  let confidence: number | undefined
  for (const entry of entries) {
    if (!isRecord(entry)) continue
    const id = str(entry.regionID)
    if (id) regions.push(id)
    const target = str(entry.detectionTarget)
    if (target && !targets.includes(target)) targets.push(target)
    const c = percent(entry.confidence) ?? (isRecord(entry.TargetRect) ? percent(entry.TargetRect.confidence) : undefined)
    if (c !== undefined) confidence = Math.max(confidence ?? 0, c)
  }
  confidence ??= percent(root.confidence)
  // Elsewhere the target is named at the top level: `targetType` (NVRs, motion with target
  // classification) or, in JSON events such as density, `Target[].recognitionType`.
  if (targets.length === 0) {
    const named = [root.targetType, ...asArray(root.Target).map((t) => (isRecord(t) ? t.recognitionType : undefined))]
    for (const t of named.map(str)) if (t && !targets.includes(t)) targets.push(t)
  }

  const alert: IsapiAlert = { eventType, eventState: state, regions, targets }
  const channel = int(root.channelID) ?? int(root.dynChannelID)
  if (channel !== undefined) alert.channel = channel
  setIf(alert, 'dateTime', str(root.dateTime))
  setIf(alert, 'channelName', str(root.channelName))
  setIf(alert, 'description', str(root.eventDescription))
  setIf(alert, 'activePostCount', int(root.activePostCount))
  setIf(alert, 'ipAddress', str(root.ipAddress))
  setIf(alert, 'macAddress', str(root.macAddress))
  setIf(alert, 'confidence', confidence)
  return { ok: true, alert }
}

export interface MappingOptions {
  defaultConfidence: number
  /** Office-specific mappings, checked before ISAPI_EVENT_TYPES (keys compared lowercased). */
  eventTypes?: Record<string, string>
  /** The office's UTC offset, for a `dateTime` a camera sends without one. */
  utcOffsetMinutes: number
}

/**
 * What the pipeline gets for an alert: a camera message, or nothing for a heartbeat.
 * `eventState: inactive` is how ISAPI says "nothing now": the 10-second videoloss heartbeat of
 * firmware 5.5+ and the end of a durative event. Neither is an event to alert on, so neither is
 * stored; the input counts it as a frame, which is what shows the camera is alive.
 * `eventType: heartBeat` (alertStream subscriptions) is treated the same.
 */
export function toCameraMessage(alert: IsapiAlert, options: MappingOptions): { heartbeat: true } | { heartbeat: false; message: DeviceCamera } {
  if (alert.eventState === 'inactive' || alert.eventType.toLowerCase() === 'heartbeat') return { heartbeat: true }
  const message: DeviceCamera = { event: gridwatchEvent(alert.eventType, options.eventTypes), confidence: alert.confidence ?? options.defaultConfidence }
  // Channel 0 does not exist in ISAPI (channels start from 1); the contract allows 0..4096.
  if (alert.channel !== undefined && alert.channel >= 0 && alert.channel <= 4096) message.channel = alert.channel
  const region = describeRegion(alert)
  if (region) message.region = region
  const ts = sourceTime(alert.dateTime, options.utcOffsetMinutes)
  if (ts) message.ts = ts
  return { heartbeat: false, message }
}

/** Known ISAPI types get GridWatch's word; an unknown one is kept as its own normalised name. */
export function gridwatchEvent(eventType: string, overrides: Record<string, string> = {}): string {
  const key = eventType.toLowerCase()
  for (const [k, v] of Object.entries(overrides)) if (k.toLowerCase() === key) return v
  // Own keys only: an eventType "constructor" must not find Object.prototype's.
  if (Object.hasOwn(ISAPI_EVENT_TYPES, key)) return ISAPI_EVENT_TYPES[key]
  const ident = key.replace(/[^a-z0-9_.-]+/g, '_').replace(/^[^a-z0-9]+/, '').slice(0, 64)
  return ident || 'other'
}

/** "IPdome, region 3 (human)": the camera's name for the view, the rule regions, what was seen. */
function describeRegion(alert: IsapiAlert): string | undefined {
  const parts: string[] = []
  if (alert.channelName) parts.push(alert.channelName)
  if (alert.regions.length > 0) parts.push(`region ${alert.regions.join(',')}`)
  let text = parts.join(', ')
  if (alert.targets.length > 0 && !alert.targets.includes('all')) text += `${text ? ' ' : ''}(${alert.targets.join(', ')})`
  // The envelope's region is at most 128 characters.
  return text ? text.slice(0, 128) : undefined
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/
const ISO_LOCAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/

/**
 * ISAPI `dateTime` is ISO 8601 with the camera's offset (2017-07-19T10:06:41+08:00). Some firmware
 * leaves the offset out; the camera's clock is then the office's local time. Anything else is
 * left out, and the gateway's receive time stands.
 */
function sourceTime(raw: string | undefined, utcOffsetMinutes: number): string | undefined {
  if (!raw) return undefined
  // Some firmware writes a one-digit hour in the offset (2013-06-10T12:00:00-6:00).
  const dateTime = raw.replace(/([+-])(\d):(\d{2})$/, (_m, sign: string, hour: string, minute: string) => `${sign}0${hour}:${minute}`)
  if (ISO_WITH_ZONE.test(dateTime)) return dateTime
  if (!ISO_LOCAL.test(dateTime)) return undefined
  const sign = utcOffsetMinutes < 0 ? '-' : '+'
  const abs = Math.abs(utcOffsetMinutes)
  return `${dateTime}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
}

function fail(message: string): { ok: false; message: string } {
  return { ok: false, message }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : v === undefined ? [] : [v]
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v.trim() || undefined
  if (typeof v === 'number') return String(v)
  return undefined
}

function int(v: unknown): number | undefined {
  const s = str(v)
  return s !== undefined && /^\d{1,9}$/.test(s) ? Number(s) : undefined
}

/** ISAPI confidences are 0-100; a value already in 0..1 with a decimal point is taken as is. */
function percent(v: unknown): number | undefined {
  const s = str(v)
  if (s === undefined || !/^\d{1,3}(\.\d+)?$/.test(s)) return undefined
  const n = Number(s)
  if (s.includes('.') && n <= 1) return n
  return n <= 100 ? n / 100 : undefined
}

function setIf<K extends keyof IsapiAlert>(alert: IsapiAlert, key: K, value: IsapiAlert[K] | undefined): void {
  if (value !== undefined) alert[key] = value
}
