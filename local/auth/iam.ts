/**
 * GCS's predefined IAM roles, reduced to the permissions the local emulator
 * checks (local/auth/types.ts). The sets follow the real roles so a test that
 * passes here fails the same way in a real project: objectCreator cannot read
 * back, objectViewer cannot write, neither can delete.
 */
import type { Permission } from './types.ts';

/** The predefined storage roles the local stack can grant. */
export type Role =
  | 'roles/storage.objectCreator'
  | 'roles/storage.objectViewer'
  | 'roles/storage.objectUser'
  | 'roles/storage.objectAdmin'
  | 'roles/storage.admin';

const OBJECT_PERMISSIONS: readonly Permission[] = [
  'storage.objects.create',
  'storage.objects.delete',
  'storage.objects.get',
  'storage.objects.list',
  'storage.objects.update',
];

const BUCKET_PERMISSIONS: readonly Permission[] = [
  'storage.buckets.create',
  'storage.buckets.delete',
  'storage.buckets.get',
  'storage.buckets.list',
  'storage.buckets.update',
];

/**
 * Role → permissions, frozen. objectUser and objectAdmin coincide here because
 * they differ only in permissions the emulator does not model (object IAM
 * policies, multipart uploads); storage.admin adds the bucket permissions.
 */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = Object.freeze({
  'roles/storage.objectCreator': Object.freeze(['storage.objects.create'] as Permission[]),
  'roles/storage.objectViewer': Object.freeze(['storage.objects.get', 'storage.objects.list'] as Permission[]),
  'roles/storage.objectUser': Object.freeze([...OBJECT_PERMISSIONS]),
  'roles/storage.objectAdmin': Object.freeze([...OBJECT_PERMISSIONS]),
  'roles/storage.admin': Object.freeze([...BUCKET_PERMISSIONS, ...OBJECT_PERMISSIONS].sort()),
});

/** Whether `name` is one of the roles above (for validating input from tests and the CLI). */
export function isRole(name: string): name is Role {
  return Object.hasOwn(ROLE_PERMISSIONS, name);
}
