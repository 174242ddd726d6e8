/**
 * Decoding the Cloud Storage CloudEvents Eventarc delivers
 * (`google.cloud.storage.object.v1.finalized` / `.deleted`, the object
 * resource as `data`) into what the handlers need: the object's key relative
 * to the repository, its generation, size and creation time.
 */
import { InvalidInputError } from '../../core/errors.ts';

/** The part of a CloudEvent the handlers read (functions-framework's CloudEvent fits). */
export interface IncomingEvent {
  id: string;
  type: string;
  source?: string;
  subject?: string;
  time?: string;
  data?: unknown;
}

export interface StorageObjectEvent {
  kind: 'finalized' | 'deleted';
  bucket: string;
  /** full object name in the bucket */
  name: string;
  /** key relative to the repository root */
  key: string;
  /** decimal string */
  generation: string;
  size: number;
  /** object timeCreated, ISO */
  created: string;
  /** when the event happened, ISO */
  time: string;
  /** the object resource (the event's data, parsed when it came as JSON text) */
  resource: Record<string, unknown>;
}

/** Where a gs:// repository lives, e.g. from parseGsUrl. */
export interface RepositoryLocation {
  bucket: string;
  /** key prefix, empty or ending in `/` */
  prefix: string;
}

const TYPES: Record<string, StorageObjectEvent['kind']> = {
  'google.cloud.storage.object.v1.finalized': 'finalized',
  'google.cloud.storage.object.v1.deleted': 'deleted',
};

/** The prefix of every Cloud Storage object event type (archived, metadataUpdated, … included). */
const STORAGE_TYPE_PREFIX = 'google.cloud.storage.object.v1.';

/**
 * An event the function cannot read, and no redelivery will make readable:
 * the handler reports it (a log line and one malformed-event alert) and
 * acknowledges it rather than failing into retries.
 */
export class MalformedEventError extends InvalidInputError {}

/** `value` for a message: JSON, shortened. */
export function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/**
 * The storage event in `event`, or undefined when it is a storage event the
 * functions do not handle (an archived version, a metadata update) or
 * concerns an object outside the repository's prefix (a shared bucket).
 * Throws MalformedEventError when the event is not a storage event, when its
 * data is not an object resource (missing, not JSON, a field of the wrong
 * type), or when it is about another bucket than the repository's (the
 * trigger watches the repository's bucket only): the message says what.
 */
export function parseStorageEvent(event: IncomingEvent, repository: RepositoryLocation): StorageObjectEvent | undefined {
  const bad = (what: string) =>
    new MalformedEventError(
      `storage event ${shown(event.id)} ${what}`,
      'check the trigger delivers google.cloud.storage.object.v1 events with the object as data',
    );
  if (typeof event.type !== 'string' || !event.type.startsWith(STORAGE_TYPE_PREFIX))
    throw bad(`has type ${shown(event.type)}, not a cloud storage object event`);
  const kind = TYPES[event.type];
  if (!kind) return undefined;
  const data = typeof event.data === 'string' || Buffer.isBuffer(event.data) ? parseJson(event.data.toString()) : event.data;
  if (data === NOT_JSON) throw bad('has data that is not JSON');
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw bad('has no object data');
  const { bucket, name, generation, size, timeCreated } = data as Record<string, unknown>;
  if (typeof bucket !== 'string' || bucket === '') throw bad(`has bucket ${shown(bucket)}, not a bucket name`);
  if (typeof name !== 'string' || name === '') throw bad(`has name ${shown(name)}, not an object name`);
  if (typeof generation !== 'string' && typeof generation !== 'number') throw bad('lacks a generation');
  if (!/^\d+$/.test(String(generation))) throw bad(`has generation "${String(generation)}"`);
  if (size !== undefined && !((typeof size === 'string' && /^\d+$/.test(size)) || (typeof size === 'number' && Number.isSafeInteger(size) && size >= 0))) {
    throw bad(`has size ${shown(size)}, not a byte count`);
  }
  if (timeCreated !== undefined && (typeof timeCreated !== 'string' || Number.isNaN(Date.parse(timeCreated))))
    throw bad(`has timeCreated ${shown(timeCreated)}, not a time`);
  if (event.time !== undefined && (typeof event.time !== 'string' || Number.isNaN(Date.parse(event.time))))
    throw bad(`has time ${shown(event.time)}, not a time`);
  if (bucket !== repository.bucket) throw bad(`is about bucket "${bucket}", not the repository's bucket "${repository.bucket}"`);
  if (!name.startsWith(repository.prefix)) return undefined;
  const created = timeCreated ?? event.time ?? new Date(0).toISOString();
  return {
    kind,
    bucket,
    name,
    key: name.slice(repository.prefix.length),
    generation: String(generation),
    size: size === undefined ? 0 : Number(size),
    created,
    time: event.time ?? created,
    resource: data as Record<string, unknown>,
  };
}

const NOT_JSON = Symbol('not JSON');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}
