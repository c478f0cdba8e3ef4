/**
 * ISAPI's answer document, `ResponseStatus`: what a camera expects back from its alarm host.
 * statusCode (ISAPI general resource): 1 OK, 2 Device Busy, 3 Device Error, 4 Invalid Operation,
 * 5 Invalid XML Format, 6 Invalid XML Content. Cameras act on the HTTP status; this body is for
 * the person reading the camera's or a proxy's log.
 */
export function responseStatus(requestURL: string, statusCode: number, statusString: string, subStatusCode: string, description?: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">',
    `<requestURL>${escapeXml(requestURL)}</requestURL>`,
    `<statusCode>${statusCode}</statusCode>`,
    `<statusString>${escapeXml(statusString)}</statusString>`,
    `<subStatusCode>${escapeXml(subStatusCode)}</subStatusCode>`,
    ...(description ? [`<description>${escapeXml(description.slice(0, 512))}</description>`] : []),
    '</ResponseStatus>',
    '',
  ].join('\n')
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c)
}
