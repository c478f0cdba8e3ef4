/**
 * Demo-only credentials. gateway/config/demo-office.yaml holds scrypt hashes of these device
 * passwords, and cloud-api's built-in demo config holds the SHA-256 of the gateway token.
 * A real office makes its own; nothing here may appear in a production config.
 */
export function demoDevicePassword(deviceId: string): string {
  return `demo-${deviceId}-secret`
}

export const DEMO_GATEWAY_TOKEN = 'demo-gateway-token-tangquan-01-not-for-production'
export const DEMO_VIEWER_TOKEN = 'demo-center-viewer-token-not-for-production'

/** Demo sign-in for the center's console: users admin, center, inspector and supervisor. */
export function demoUserPassword(name: string): string {
  return `demo-${name}-password`
}
