/**
 * What the local GCS emulator asks about a request's identity. Implemented by
 * the token authority that the metadata-server stand-in issues tokens from
 * (local/auth/authority.ts), so the agent's unmodified ADC path ends at an
 * emulator that really checks who is calling and what they may do.
 */

/** The IAM permissions the emulator checks (a subset of GCS's). */
export type Permission =
  | 'storage.buckets.get'
  | 'storage.buckets.list'
  | 'storage.buckets.create'
  | 'storage.buckets.update'
  | 'storage.buckets.delete'
  | 'storage.objects.create'
  | 'storage.objects.delete'
  | 'storage.objects.get'
  | 'storage.objects.list'
  | 'storage.objects.update';

export interface AccessControl {
  /**
   * The identity (a service-account email) an access token belongs to, or
   * undefined when the token is unknown, expired or revoked (→ 401).
   */
  identify(token: string): string | undefined;
  /** Whether `identity` holds `permission` on `bucket` (→ 403 when not). */
  allowed(identity: string, permission: Permission, bucket: string): boolean;
}
