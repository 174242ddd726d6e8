/**
 * What validation reports. Corrupt content is a result (`ok: false` with a
 * one-line `problem`), never an exception: the pipeline records it and moves
 * on. Exceptions are for what may go away on a retry (storage, permissions,
 * an interrupted call) and for bugs.
 */

/** The outcome of validating one object or one backup. */
export interface ValidationResult {
  ok: boolean;
  /** one line saying what is wrong; set exactly when `ok` is false */
  problem?: string;
  /** bytes of the decoded content, once it was read and matched what was recorded */
  rawSize?: number;
  /** CRC32C of the decoded content, base64 (GCS style), under the same condition */
  rawCrc32c?: string;
  /**
   * What was learnt, for logs and the catalogue, e.g. `kind`, `timeline`,
   * `systemIdentifier`, `walSegmentSize` of a segment, `files` of a part.
   * `decoderUnavailable: true` marks a result that says nothing about the
   * object: its codec cannot be decoded in this process.
   */
  details?: Record<string, unknown>;
}

/** What the repository says a WAL object must match (from `gcwal.json`); each check is skipped when its value is absent. */
export interface WalExpectations {
  /** the repository's system identifier, decimal string */
  systemIdentifier?: string;
  /** the repository's WAL segment size in bytes */
  walSegmentSize?: number;
}

/** Options every validation takes. */
export interface ValidateOptions {
  signal?: AbortSignal;
}
