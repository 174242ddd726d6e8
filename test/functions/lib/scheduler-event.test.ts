import test from 'ava';
import { checkSchedulerEvent } from '../../../functions/lib/scheduler-event.ts';
import { MalformedEventError, type IncomingEvent } from '../../../functions/lib/storage-event.ts';

const PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';

/** A tick as functions-framework hands it to prune, with `data` as the message's bytes (undefined: no data). */
function tick(data: string | undefined, fields: Partial<IncomingEvent> = {}): IncomingEvent {
  const message: Record<string, unknown> = { messageId: '42', publishTime: '2026-03-01T12:00:00.000Z', attributes: {} };
  if (data !== undefined) message.data = Buffer.from(data).toString('base64');
  return {
    id: '42',
    type: PUBLISHED,
    source: '//pubsub.googleapis.com/projects/p/topics/gcwal-prune',
    data: { subscription: 'projects/p/subscriptions/s', message },
    ...fields,
  };
}

const accepted: [string, IncomingEvent][] = [
  ["cloud scheduler's own tick", tick('{"job":"prune"}')],
  ['a tick naming no job', tick('{}')],
  ["the local stack's tick", tick('{"source":"gcwal local","job":"prune","time":"2026-03-01T12:00:00.000Z"}')],
  ['a message without data', tick(undefined)],
];

for (const [name, event] of accepted) {
  test(`prune accepts ${name}`, (t) => {
    t.notThrows(() => checkSchedulerEvent(event, 'prune'));
  });
}

const refused: [string, IncomingEvent, RegExp][] = [
  ['a message for the watchdog', tick('{"job":"watchdog"}'), /^scheduler message "42" is for job "watchdog", not prune$/],
  ['message data that is not JSON', tick('{"job": prune}'), /has message data that is not JSON$/],
  ['message data that is JSON but not an object', tick('[]'), /has message data \[\], not a JSON object$/],
  ['message data that is not a string', { ...tick(undefined), data: { message: { data: 17 } } }, /has message data 17, not base64$/],
  ['an event without a message', { ...tick(undefined), data: { subscription: 's' } }, /has no pub\/sub message$/],
  [
    'a storage event',
    tick('{}', { type: 'google.cloud.storage.object.v1.finalized' }),
    /has type "google\.cloud\.storage\.object\.v1\.finalized", not google\.cloud\.pubsub\.topic\.v1\.messagePublished$/,
  ],
];

for (const [name, event, message] of refused) {
  test(`prune refuses ${name} as malformed`, (t) => {
    const error = t.throws(() => checkSchedulerEvent(event, 'prune'), { instanceOf: MalformedEventError, message });
    t.regex(error?.hint ?? '', /\{"job":"prune"\}/);
  });
}
