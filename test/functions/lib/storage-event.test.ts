/**
 * Decoding storage CloudEvents. The events are built by the GCS emulator's
 * own delivery code (local/gcs/events.ts deliveryRequest, the object resource
 * of local/gcs/objects.ts) and converted the way functions-framework converts
 * a binary-mode request, so they have exactly the shape a handler receives.
 */
import test from 'ava';
import { InvalidInputError } from '../../../core/errors.ts';
import {
  MalformedEventError,
  parseStorageEvent,
  type IncomingEvent,
  type RepositoryLocation,
  type StorageObjectEvent,
} from '../../../functions/lib/storage-event.ts';
import { deliveryRequest } from '../../../local/gcs/events.ts';
import { objectResource } from '../../../local/gcs/objects.ts';
import type { ObjectRecord } from '../../../local/gcs/store.ts';

const CREATED = '2026-03-01T12:00:00.123Z';
const EVENT_TIME = '2026-03-01T12:00:00.456Z';

function record(name: string, fields: Partial<ObjectRecord> = {}): ObjectRecord {
  return {
    bucket: 'archive',
    name,
    generation: '1772366400123456',
    metageneration: 1,
    size: 16777216,
    crc32c: 'AAAAAA==',
    contentType: 'application/octet-stream',
    timeCreated: CREATED,
    updated: CREATED,
    metadata: { 'gcwal-codec': 'lzo' },
    ...fields,
  };
}

/** The event a handler receives for `type` of the object `r`, as functions-framework builds it from the emulator's request. */
function delivered(type: 'finalized' | 'deleted', r: ObjectRecord, id = 'event-1'): IncomingEvent & Record<string, unknown> {
  const request = deliveryRequest(
    { kind: 'cloudevent', url: 'http://127.0.0.1:1/' },
    { type, record: r, resource: objectResource(r, 'http://127.0.0.1:2'), time: EVENT_TIME },
    id,
    0,
  );
  const event: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(request.headers)) if (name.startsWith('ce-')) event[name.slice(3)] = value;
  event.data = JSON.parse(request.body);
  return event as IncomingEvent & Record<string, unknown>;
}

const AT_PREFIX: RepositoryLocation = { bucket: 'archive', prefix: 'prod/db1/' };
const AT_ROOT: RepositoryLocation = { bucket: 'archive', prefix: '' };

test('a delivered event has the shape Eventarc gives it', (t) => {
  const event = delivered('finalized', record('prod/db1/wal/000000010000000000000003'));
  t.like(event, {
    id: 'event-1',
    specversion: '1.0',
    type: 'google.cloud.storage.object.v1.finalized',
    source: '//storage.googleapis.com/projects/_/buckets/archive',
    subject: 'objects/prod/db1/wal/000000010000000000000003',
    time: EVENT_TIME,
    bucket: 'archive',
    data: {
      kind: 'storage#object',
      bucket: 'archive',
      name: 'prod/db1/wal/000000010000000000000003',
      generation: '1772366400123456',
      size: '16777216',
      timeCreated: CREATED,
    },
  });
});

const decoded: { name: string; event: IncomingEvent; location: RepositoryLocation; expected: Omit<StorageObjectEvent, 'resource'> }[] = [
  {
    name: 'a finalized segment under the repository prefix',
    event: delivered('finalized', record('prod/db1/wal/000000010000000000000003')),
    location: AT_PREFIX,
    expected: {
      kind: 'finalized',
      bucket: 'archive',
      name: 'prod/db1/wal/000000010000000000000003',
      key: 'wal/000000010000000000000003',
      generation: '1772366400123456',
      size: 16777216,
      created: CREATED,
      time: EVENT_TIME,
    },
  },
  {
    name: 'a deleted backup part',
    event: delivered('deleted', record('prod/db1/backups/base_000000010000000000000002/part_00000.tar', { size: 5 })),
    location: AT_PREFIX,
    expected: {
      kind: 'deleted',
      bucket: 'archive',
      name: 'prod/db1/backups/base_000000010000000000000002/part_00000.tar',
      key: 'backups/base_000000010000000000000002/part_00000.tar',
      generation: '1772366400123456',
      size: 5,
      created: CREATED,
      time: EVENT_TIME,
    },
  },
  {
    name: 'an object of a repository at the bucket root',
    event: delivered('finalized', record('gcwal.json', { size: 120 })),
    location: AT_ROOT,
    expected: {
      kind: 'finalized',
      bucket: 'archive',
      name: 'gcwal.json',
      key: 'gcwal.json',
      generation: '1772366400123456',
      size: 120,
      created: CREATED,
      time: EVENT_TIME,
    },
  },
  {
    name: 'a generation beyond 2^53, kept exact',
    event: delivered('finalized', record('wal/000000010000000000000003', { generation: '9007199254740993123' })),
    location: AT_ROOT,
    expected: {
      kind: 'finalized',
      bucket: 'archive',
      name: 'wal/000000010000000000000003',
      key: 'wal/000000010000000000000003',
      generation: '9007199254740993123',
      size: 16777216,
      created: CREATED,
      time: EVENT_TIME,
    },
  },
];

for (const c of decoded) {
  test(`decodes ${c.name}`, (t) => {
    t.deepEqual(parseStorageEvent(c.event, c.location), { ...c.expected, resource: c.event.data as Record<string, unknown> });
  });
}

const outside: { name: string; event: IncomingEvent }[] = [
  { name: 'another prefix in the bucket', event: delivered('finalized', record('prod/db2/wal/000000010000000000000003')) },
  { name: 'a prefix that only starts with the same letters', event: delivered('finalized', record('prod/db1-old/wal/000000010000000000000003')) },
  {
    name: 'a metadata update',
    event: { ...delivered('finalized', record('prod/db1/wal/000000010000000000000003')), type: 'google.cloud.storage.object.v1.metadataUpdated' },
  },
  {
    name: 'an archived (noncurrent) version',
    event: { ...delivered('deleted', record('prod/db1/wal/000000010000000000000003')), type: 'google.cloud.storage.object.v1.archived' },
  },
];

for (const c of outside) {
  test(`ignores ${c.name}`, (t) => {
    t.is(parseStorageEvent(c.event, AT_PREFIX), undefined);
  });
}

test('accepts the object as JSON text and a numeric generation', (t) => {
  const event = delivered('finalized', record('prod/db1/wal/000000010000000000000003'));
  const data = event.data as Record<string, unknown>;
  const fromText = parseStorageEvent({ ...event, data: JSON.stringify(data) }, AT_PREFIX);
  t.like(fromText, { key: 'wal/000000010000000000000003', generation: '1772366400123456', size: 16777216 });
  t.deepEqual(fromText?.resource, data, 'the parsed object, for whoever reads more of it');
  t.like(parseStorageEvent({ ...event, data: { ...data, generation: 42 } }, AT_PREFIX), { generation: '42' });
});

test('falls back to the event time for a missing creation time, and to the creation time for a missing event time', (t) => {
  const event = delivered('finalized', record('prod/db1/wal/000000010000000000000003'));
  const data = { ...(event.data as Record<string, unknown>) };
  delete data.timeCreated;
  t.like(parseStorageEvent({ ...event, data }, AT_PREFIX), { created: EVENT_TIME, time: EVENT_TIME });
  const { time: _time, ...untimed } = event;
  t.like(parseStorageEvent(untimed, AT_PREFIX), { created: CREATED, time: CREATED });
});

const OBJ = { bucket: 'archive', name: 'prod/db1/wal/x', generation: '1' };
const malformed: { name: string; data?: unknown; event?: Partial<IncomingEvent>; message: RegExp }[] = [
  { name: 'no data', data: undefined, message: /^storage event "event-1" has no object data$/ },
  { name: 'data that is not JSON', data: '{"bucket": "archive", "name":', message: /has data that is not JSON$/ },
  { name: 'data that is JSON but not an object', data: '[1,2]', message: /has no object data$/ },
  { name: 'bytes that are not JSON', data: Buffer.from('\x00garbage'), message: /has data that is not JSON$/ },
  { name: 'no name', data: { bucket: 'archive', generation: '1' }, message: /has name undefined, not an object name$/ },
  { name: 'a name that is not a string', data: { ...OBJ, name: 42 }, message: /has name 42, not an object name$/ },
  { name: 'a name that is an object', data: { ...OBJ, name: { toString: 'x' } }, message: /has name \{"toString":"x"\}, not an object name$/ },
  { name: 'no bucket', data: { name: 'wal/x', generation: '1' }, message: /has bucket undefined, not a bucket name$/ },
  {
    name: 'a bucket that is not ours',
    data: { ...OBJ, bucket: 'someone-elses' },
    message: /is about bucket "someone-elses", not the repository's bucket "archive"$/,
  },
  { name: 'no generation', data: { bucket: 'archive', name: 'prod/db1/wal/x' }, message: /lacks a generation/ },
  { name: 'a generation that is not decimal', data: { ...OBJ, generation: '0x1F' }, message: /has generation "0x1F"/ },
  { name: 'a negative generation', data: { ...OBJ, generation: -1 }, message: /has generation "-1"/ },
  { name: 'a size that is not a byte count', data: { ...OBJ, size: 'lots' }, message: /has size "lots", not a byte count$/ },
  { name: 'a creation time that is not a time', data: { ...OBJ, timeCreated: 17 }, message: /has timeCreated 17, not a time$/ },
  { name: 'an event time that is not a time', data: OBJ, event: { time: 'yesterday' }, message: /has time "yesterday", not a time$/ },
  {
    name: 'a type that is not a storage event',
    data: OBJ,
    event: { type: 'google.cloud.pubsub.topic.v1.messagePublished' },
    message: /has type "google\.cloud\.pubsub\.topic\.v1\.messagePublished", not a cloud storage object event$/,
  },
  { name: 'no type', data: OBJ, event: { type: undefined }, message: /has type undefined, not a cloud storage object event$/ },
];

for (const c of malformed) {
  test(`rejects an event with ${c.name}, which no retry can fix`, (t) => {
    const event = { ...delivered('finalized', record('prod/db1/wal/000000010000000000000003')), data: c.data, ...c.event } as IncomingEvent;
    const error = t.throws(() => parseStorageEvent(event, AT_PREFIX), { instanceOf: MalformedEventError, message: c.message });
    t.true(error instanceof InvalidInputError);
    t.is(error?.code, 'invalid_input');
    t.regex(error?.hint ?? '', /google\.cloud\.storage\.object\.v1/);
  });
}
