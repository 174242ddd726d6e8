/**
 * Resumable upload sessions: what the start request said (name, metadata,
 * preconditions, who started it) and how many bytes have been persisted in
 * the session's temp file, with their running checksums. Sessions live in
 * memory; their bytes live in the state directory's tmp/, which is emptied
 * on start, so sessions do not survive a restart of the emulator (clients
 * then get 404 and start a new upload).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { newHash, type RunningHash } from './body.ts';
import { KeyedLock } from './lock.ts';
import type { InsertMetadata } from './objects.ts';
import type { Preconditions } from './preconditions.ts';
import type { ObjectRecord } from './store.ts';

/** One resumable upload. */
export interface Session {
  id: string;
  bucket: string;
  name: string;
  insert: InsertMetadata;
  /** X-Upload-Content-Type */
  fallbackContentType?: string;
  /** X-Upload-Content-Length */
  expectedSize?: number;
  /** applied at finalisation */
  preconditions: Preconditions;
  /** who started the session; their permissions apply at finalisation */
  identity: string | undefined;
  tempFile: string;
  /** bytes persisted so far and their checksums */
  hash: RunningHash;
  /** the object, once the upload has been finalised */
  done?: ObjectRecord;
}

/** The sessions of one emulator. */
export class Sessions {
  private readonly sessions = new Map<string, Session>();
  private readonly locks = new KeyedLock();

  /** Start a session; its id is long and random (the session URI is the capability to upload). */
  create(fields: Omit<Session, 'id' | 'hash' | 'done'>): Session {
    const id = `ADPyc${randomBytes(30).toString('base64url')}`;
    const session: Session = { ...fields, id, hash: newHash() };
    this.sessions.set(id, session);
    return session;
  }

  /** The session with this id, or undefined when unknown (never started, cancelled, failed or lost in a restart). */
  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  /** Forget a session and remove its bytes. */
  async discard(id: string): Promise<void> {
    const session = this.sessions.get(id);
    this.sessions.delete(id);
    if (session && !session.done) await fs.rm(session.tempFile, { force: true });
  }

  /** Run `fn` with exclusive access to session `id` (chunks of one session never interleave). */
  exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}
