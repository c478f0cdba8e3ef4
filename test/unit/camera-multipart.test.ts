import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { readMultipart } from '../../gateway/inputs/camera/camera-input.ts'

const JPEG = Buffer.from('ffd8ffe000104a46494600010100000100010000ffd9', 'hex')
const XML = Buffer.from('<EventNotificationAlert version="2.0"><eventType>fielddetection</eventType></EventNotificationAlert>')
const MAX_SNAPSHOT = 1024 * 1024
const MAX_BODY = 4 * 1024 * 1024

const part = (headers: string[], body: Buffer) => Buffer.concat([Buffer.from(`--B0\r\n${headers.join('\r\n')}\r\n\r\n`), body, Buffer.from('\r\n')])
const body = (...parts: Buffer[]) => Buffer.concat([...parts, Buffer.from('--B0--\r\n')])

/** The request as readMultipart sees it: its headers, and its body in exactly these chunks. */
function request(chunks: Buffer[], contentType = 'multipart/form-data; boundary=B0') {
  return { headers: { 'content-type': contentType }, raw: Readable.from(chunks) } as never
}

describe('camera multipart reading', () => {
  const push = body(part(['Content-Disposition: form-data; name="fielddetection"', 'Content-Type: application/xml'], XML), part(['Content-Type: image/jpeg'], JPEG))

  it('reads the same event and picture however the body is cut into chunks', async () => {
    for (let cut = 1; cut < push.length; cut++) {
      const pushed = await readMultipart(request([push.subarray(0, cut), push.subarray(cut)]), MAX_SNAPSHOT, MAX_BODY)
      expect(pushed.document, `cut at ${cut}`).toEqual(XML)
      expect(pushed.jpeg, `cut at ${cut}`).toEqual(JPEG)
    }
  })

  it('takes a preamble before the first boundary and an epilogue arriving after the last (RFC 2046 §5.1.1)', async () => {
    // The final CRLF in a chunk of its own, as when it is a TCP segment or a chunked-encoding chunk of its own.
    const end = push.length - 2
    expect((await readMultipart(request([push.subarray(0, end), push.subarray(end)]), MAX_SNAPSHOT, MAX_BODY)).document).toEqual(XML)
    expect((await readMultipart(request([push, Buffer.from('trailing words\r\n')]), MAX_SNAPSHOT, MAX_BODY)).document).toEqual(XML)
    expect((await readMultipart(request([Buffer.from('\r\n'), push]), MAX_SNAPSHOT, MAX_BODY)).document).toEqual(XML)
    expect((await readMultipart(request([Buffer.from('This is a multi-part message in MIME format.\r\n'), push]), MAX_SNAPSHOT, MAX_BODY)).jpeg).toEqual(JPEG)
  })

  it('reads the boundary parameter quoted, and unquoted before another parameter', async () => {
    expect((await readMultipart(request([push], 'multipart/form-data; boundary="B0"'), MAX_SNAPSHOT, MAX_BODY)).document).toEqual(XML)
    expect((await readMultipart(request([push], 'multipart/form-data; boundary=B0 ; charset=UTF-8'), MAX_SNAPSHOT, MAX_BODY)).document).toEqual(XML)
  })

  it('reads a part whose header is not UTF-8 (a GBK file name) by its content', async () => {
    // "测试.jpg" in GBK: not valid UTF-8.
    const gbkName = Buffer.concat([Buffer.from('Content-Disposition: form-data; name="pic"; filename="'), Buffer.from('b2e2cad4', 'hex'), Buffer.from('.jpg"')])
    const raw = Buffer.concat([Buffer.from('--B0\r\n'), gbkName, Buffer.from('\r\n\r\n'), JPEG, Buffer.from('\r\n')])
    const pushed = await readMultipart(request([body(part(['Content-Type: application/xml'], XML), raw)]), MAX_SNAPSHOT, MAX_BODY)
    expect(pushed.document).toEqual(XML)
    expect(pushed.jpeg).toEqual(JPEG)
  })

  it('keeps an event whose picture is over the snapshot limit, without the picture', async () => {
    const big = Buffer.concat([JPEG, Buffer.alloc(2048)])
    const pushed = await readMultipart(request([body(part(['Content-Type: application/xml'], XML), part(['Content-Type: image/jpeg'], big))]), 1024, MAX_BODY)
    expect(pushed.document).toEqual(XML)
    expect(pushed.jpeg).toBeUndefined()
    expect(pushed.jpegTooLarge).toBe(big.length)
  })

  it('refuses a body that ends before its closing boundary, one without any boundary, and one over the limit', async () => {
    await expect(readMultipart(request([push.subarray(0, push.length - 10)]), MAX_SNAPSHOT, MAX_BODY)).rejects.toMatchObject({ reason: 'bad_multipart' })
    await expect(readMultipart(request([Buffer.alloc(4000, 0x41)]), MAX_SNAPSHOT, MAX_BODY)).rejects.toMatchObject({ reason: 'bad_multipart' })
    const huge = body(part(['Content-Type: application/octet-stream'], Buffer.alloc(8192)))
    await expect(readMultipart(request([huge]), MAX_SNAPSHOT, 4096)).rejects.toMatchObject({ reason: 'oversized', message: 'multipart body is larger than 4096 bytes' })
    const declared = { headers: { 'content-type': 'multipart/form-data; boundary=B0', 'content-length': String(10 * MAX_BODY) }, raw: Readable.from([]) } as never
    await expect(readMultipart(declared, MAX_SNAPSHOT, MAX_BODY)).rejects.toMatchObject({ reason: 'oversized' })
  })
})
