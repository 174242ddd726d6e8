/**
 * Bucket retention policies: an object may be neither deleted nor replaced
 * until `retentionPeriod` seconds after its creation. GCS evaluates the
 * bucket's current policy, so that is what is checked here too; objects also
 * carry the `retentionExpirationTime` computed when they were created.
 */
import { ApiError } from './errors.ts';
import type { BucketRecord, ObjectRecord } from './store.ts';

/** When an object created at `timeCreated` may first be deleted, or undefined without a policy. */
export function retentionExpiration(bucket: BucketRecord, timeCreated: string): string | undefined {
  if (!bucket.retentionPeriod) return undefined;
  return new Date(Date.parse(timeCreated) + bucket.retentionPeriod * 1000).toISOString();
}

/** Throw 403 `retentionPolicyNotMet` when `record` is still under the bucket's retention policy at `now`. */
export function checkRetention(bucket: BucketRecord, record: ObjectRecord, now = Date.now()): void {
  const until = retentionExpiration(bucket, record.timeCreated);
  if (until === undefined || Date.parse(until) <= now) return;
  throw new ApiError(
    403,
    'retentionPolicyNotMet',
    `Object '${record.bucket}/${record.name}' is subject to bucket's retention policy or object retention and cannot be deleted or overwritten until ${until}`,
  );
}
