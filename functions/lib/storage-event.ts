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

/**
 * The storage event in `event`, or undefined when it concerns an object
 * outside the repository (Eventarc cannot filter by prefix, so a function on
 * a shared bucket sees every object) or is of another type. Throws
 * InvalidInputError when the payload is not a storage object resource: such
 * an event cannot become valid by retrying, and the log line says why.
 */
export function parseStorageEvent(event: IncomingEvent, repository: RepositoryLocation): StorageObjectEvent | undefined {
  const kind = TYPES[event.type];
  if (!kind) return undefined;
  const data = (typeof event.data === 'string' ? safeJson(event.data) : event.data) as Record<string, unknown> | undefined;
  const bad = (what: string) => new InvalidInputError(`storage event ${event.id} ${what}`, 'check the trigger delivers google.cloud.storage.object.v1 events with the object as data');
  if (!data || typeof data !== 'object') throw bad('has no object data');
  const bucket = data.bucket;
  const name = data.name;
  const generation = data.generation;
  if (typeof bucket !== 'string' || typeof name !== 'string') throw bad('lacks bucket or name');
  if (typeof generation !== 'string' && typeof generation !== 'number') throw bad('lacks a generation');
  if (!/^\d+$/.test(String(generation))) throw bad(`has generation "${String(generation)}"`);
  if (bucket !== repository.bucket || !name.startsWith(repository.prefix)) return undefined;
  const size = Number(data.size ?? 0);
  const created = typeof data.timeCreated === 'string' ? data.timeCreated : event.time ?? new Date(0).toISOString();
  return {
    kind,
    bucket,
    name,
    key: name.slice(repository.prefix.length),
    generation: String(generation),
    size: Number.isFinite(size) ? size : 0,
    created,
    time: event.time ?? created,
    resource: data,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
