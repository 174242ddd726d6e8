import test from 'ava';
import { AuthError, UsageError } from '../../../core/errors.ts';
import { TokenAuthority } from '../../../local/auth/authority.ts';
import { ROLE_PERMISSIONS, type Role } from '../../../local/auth/iam.ts';
import type { Permission } from '../../../local/auth/types.ts';

const SA = 'agent@proj.iam.gserviceaccount.com';
const OTHER = 'other@proj.iam.gserviceaccount.com';

/** A clock the test moves by hand, so expiry needs no waiting. */
function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

test('an issued token identifies its identity and is opaque and unique', (t) => {
  const authority = new TokenAuthority();
  const a = authority.issue(SA);
  const b = authority.issue(SA);
  t.not(a.token, b.token);
  t.regex(a.token, /^ya29\.local\.[A-Za-z0-9_-]{43}$/);
  t.false(a.token.includes(SA));
  t.is(authority.identify(a.token), SA);
  t.is(authority.identify(b.token), SA);
});

test('unknown tokens identify nobody', (t) => {
  const authority = new TokenAuthority();
  const { token } = authority.issue(SA);
  t.is(authority.identify(''), undefined);
  t.is(authority.identify('ya29.local.nope'), undefined);
  t.is(authority.identify(token + 'x'), undefined);
});

test('a token stops identifying at its expiry, one hour by default', (t) => {
  const clock = manualClock();
  const authority = new TokenAuthority({ now: clock.now });
  const hour = authority.issue(SA);
  const short = authority.issue(SA, 10);
  t.is(hour.expiresAt, clock.now() + 3600_000);
  t.is(short.expiresAt, clock.now() + 10_000);
  clock.advance(9_999);
  t.is(authority.identify(short.token), SA);
  clock.advance(1);
  t.is(authority.identify(short.token), undefined);
  t.is(authority.identify(hour.token), SA);
  clock.advance(3600_000);
  t.is(authority.identify(hour.token), undefined);
});

test('revoking a token leaves the identity and its other tokens working', (t) => {
  const authority = new TokenAuthority();
  const a = authority.issue(SA);
  const b = authority.issue(SA);
  t.is(authority.revoke(a.token), 1);
  t.is(authority.identify(a.token), undefined);
  t.is(authority.identify(b.token), SA);
  t.false(authority.isDisabled(SA));
  t.is(authority.identify(authority.issue(SA).token), SA);
});

test('revoking an identity kills its tokens and refuses new ones until restored', (t) => {
  const authority = new TokenAuthority();
  authority.grant(SA, 'roles/storage.objectViewer');
  const a = authority.issue(SA);
  const b = authority.issue(SA);
  const other = authority.issue(OTHER);
  t.is(authority.revoke(SA), 2);
  t.true(authority.isDisabled(SA));
  t.is(authority.identify(a.token), undefined);
  t.is(authority.identify(b.token), undefined);
  t.is(authority.identify(other.token), OTHER);
  const err = t.throws(() => authority.issue(SA), { instanceOf: AuthError });
  t.regex(err.message, /agent@proj\.iam\.gserviceaccount\.com is disabled/);
  t.false(authority.allowed(SA, 'storage.objects.get', 'b'));
  t.deepEqual(authority.permissionsOf(SA, 'b'), []);

  authority.restore(SA);
  t.false(authority.isDisabled(SA));
  t.is(authority.identify(a.token), undefined, 'restoring does not bring revoked tokens back');
  t.is(authority.identify(authority.issue(SA).token), SA);
  t.true(authority.allowed(SA, 'storage.objects.get', 'b'), 'bindings survive a disable');
});

test('revoking an identity that never had a token still disables it', (t) => {
  const authority = new TokenAuthority();
  t.is(authority.revoke(SA), 0);
  t.throws(() => authority.issue(SA), { instanceOf: AuthError });
});

test('issue rejects an empty identity and a non-positive lifetime', (t) => {
  const authority = new TokenAuthority();
  t.throws(() => authority.issue(''), { instanceOf: UsageError });
  t.throws(() => authority.issue(SA, 0), { instanceOf: UsageError });
  t.throws(() => authority.issue(SA, -5), { instanceOf: UsageError });
  t.throws(() => authority.issue(SA, Number.NaN), { instanceOf: UsageError });
});

const ALL: Permission[] = [
  'storage.buckets.create',
  'storage.buckets.delete',
  'storage.buckets.get',
  'storage.buckets.list',
  'storage.buckets.update',
  'storage.objects.create',
  'storage.objects.delete',
  'storage.objects.get',
  'storage.objects.list',
  'storage.objects.update',
];
const OBJECTS = ALL.filter((p) => p.startsWith('storage.objects.'));

const ROLE_TABLE: { role: Role; permissions: Permission[] }[] = [
  { role: 'roles/storage.objectCreator', permissions: ['storage.objects.create'] },
  { role: 'roles/storage.objectViewer', permissions: ['storage.objects.get', 'storage.objects.list'] },
  { role: 'roles/storage.objectUser', permissions: OBJECTS },
  { role: 'roles/storage.objectAdmin', permissions: OBJECTS },
  { role: 'roles/storage.admin', permissions: ALL },
];

for (const { role, permissions } of ROLE_TABLE) {
  test(`${role} grants exactly ${permissions.length === ALL.length ? 'every permission' : permissions.join(', ')}`, (t) => {
    const authority = new TokenAuthority();
    authority.grant(SA, role, 'bkt');
    for (const p of ALL) t.is(authority.allowed(SA, p, 'bkt'), permissions.includes(p), p);
    t.deepEqual(authority.permissionsOf(SA, 'bkt'), permissions);
    t.deepEqual([...ROLE_PERMISSIONS[role]].sort(), permissions);
  });
}

test('the agent roles together allow create, get and list but never delete or overwrite', (t) => {
  const authority = new TokenAuthority();
  authority.grant(SA, 'roles/storage.objectCreator', 'bkt');
  authority.grant(SA, 'roles/storage.objectViewer', 'bkt');
  t.deepEqual(authority.permissionsOf(SA, 'bkt'), ['storage.objects.create', 'storage.objects.get', 'storage.objects.list']);
  t.false(authority.allowed(SA, 'storage.objects.delete', 'bkt'));
  t.false(authority.allowed(SA, 'storage.objects.update', 'bkt'));
  t.deepEqual(authority.rolesOf(SA, 'bkt'), ['roles/storage.objectCreator', 'roles/storage.objectViewer']);
});

test('a grant on one bucket says nothing about another; a grant on * covers all', (t) => {
  const authority = new TokenAuthority();
  authority.grant(SA, 'roles/storage.objectViewer', 'one');
  t.true(authority.allowed(SA, 'storage.objects.get', 'one'));
  t.false(authority.allowed(SA, 'storage.objects.get', 'two'));
  t.false(authority.allowed(OTHER, 'storage.objects.get', 'one'));
  authority.grant(OTHER, 'roles/storage.admin');
  t.true(authority.allowed(OTHER, 'storage.buckets.create', 'one'));
  t.true(authority.allowed(OTHER, 'storage.objects.delete', 'any-bucket'));
  t.deepEqual(authority.rolesOf(OTHER, 'x'), ['roles/storage.admin']);
});

test('revokeRole removes only that binding on that bucket', (t) => {
  const authority = new TokenAuthority();
  authority.grant(SA, 'roles/storage.objectViewer', 'bkt');
  authority.grant(SA, 'roles/storage.objectCreator', 'bkt');
  authority.grant(SA, 'roles/storage.objectViewer');
  authority.revokeRole(SA, 'roles/storage.objectViewer', 'bkt');
  t.true(authority.allowed(SA, 'storage.objects.get', 'bkt'), 'still held through *');
  authority.revokeRole(SA, 'roles/storage.objectViewer');
  t.false(authority.allowed(SA, 'storage.objects.get', 'bkt'));
  t.true(authority.allowed(SA, 'storage.objects.create', 'bkt'));
  authority.revokeRole(SA, 'roles/storage.objectViewer', 'bkt');
  authority.revokeRole(OTHER, 'roles/storage.admin');
  t.deepEqual(authority.rolesOf(SA, 'bkt'), ['roles/storage.objectCreator']);
});

test('an unknown role is refused with the list of known ones', (t) => {
  const authority = new TokenAuthority();
  const err = t.throws(() => authority.grant(SA, 'roles/storage.owner' as Role), { instanceOf: UsageError });
  t.regex(err.hint, /roles\/storage\.objectCreator/);
});

test('two authorities share nothing', (t) => {
  const a = new TokenAuthority();
  const b = new TokenAuthority();
  a.grant(SA, 'roles/storage.admin');
  const { token } = a.issue(SA);
  b.revoke(OTHER);
  t.is(b.identify(token), undefined);
  t.false(b.allowed(SA, 'storage.objects.get', 'bkt'));
  t.notThrows(() => a.issue(OTHER));
});
