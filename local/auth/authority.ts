/**
 * The local stack's stand-in for Google's token service and IAM: it issues
 * opaque bearer tokens for service-account identities (the metadata-server
 * stand-in asks it for them) and answers the emulator's "who is this, and may
 * they do that" questions. All state lives on the instance, so tests running
 * side by side never share tokens or grants.
 */
import { randomBytes } from 'node:crypto';
import { AuthError, UsageError } from '../../core/errors.ts';
import { isRole, ROLE_PERMISSIONS, type Role } from './iam.ts';
import type { AccessControl, Permission } from './types.ts';

/** A freshly issued access token. */
export interface IssuedToken {
  /** opaque bearer token, `ya29.`-prefixed like Google's so it looks familiar in logs */
  token: string;
  /** when `identify` stops accepting it, in milliseconds since the epoch */
  expiresAt: number;
}

export interface TokenAuthorityOptions {
  /** the clock, in milliseconds since the epoch; tests inject one to expire tokens without waiting */
  now?: () => number;
}

/** The bucket argument that makes a grant apply to every bucket. */
export const ALL_BUCKETS = '*';

/**
 * Issues and checks access tokens and holds IAM bindings (identity → roles per
 * bucket, or on every bucket with `*`).
 *
 * Revoking an identity (rather than a single token) invalidates all its
 * tokens and disables it: `issue` then throws AuthError and the metadata
 * server refuses to mint tokens for it, as for a disabled service account,
 * until `restore`. Bindings survive a disable, as in IAM.
 */
export class TokenAuthority implements AccessControl {
  readonly #now: () => number;
  readonly #tokens = new Map<string, { identity: string; expiresAt: number }>();
  readonly #disabled = new Set<string>();
  /** identity → bucket (or `*`) → roles */
  readonly #bindings = new Map<string, Map<string, Set<Role>>>();

  constructor(options: TokenAuthorityOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /**
   * A new random token for `identity`, valid for `ttlSeconds` (default one
   * hour, like Google's). Throws AuthError when the identity is disabled and
   * UsageError for an empty identity or a non-positive lifetime.
   */
  issue(identity: string, ttlSeconds = 3600): IssuedToken {
    if (!identity) throw new UsageError('cannot issue a token for an empty identity', 'pass a service-account email');
    if (!(ttlSeconds > 0)) throw new UsageError(`token lifetime must be positive, not ${ttlSeconds}`, 'pass a number of seconds greater than 0');
    if (this.#disabled.has(identity)) {
      throw new AuthError(`service account ${identity} is disabled`, `call restore("${identity}") to enable it again`);
    }
    this.#prune();
    const token = `ya29.local.${randomBytes(32).toString('base64url')}`;
    const expiresAt = this.#now() + Math.round(ttlSeconds * 1000);
    this.#tokens.set(token, { identity, expiresAt });
    return { token, expiresAt };
  }

  /** The identity `token` was issued to, or undefined when it is unknown, expired or revoked. */
  identify(token: string): string | undefined {
    const entry = this.#tokens.get(token);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#tokens.delete(token);
      return undefined;
    }
    return entry.identity;
  }

  /**
   * Revoke one token, or an identity: all its tokens plus no new ones until
   * `restore`. Anything that is not a live token is taken as an identity
   * (tokens never contain `@`, emails always do). Returns how many tokens
   * stopped working.
   */
  revoke(tokenOrIdentity: string): number {
    if (this.#tokens.delete(tokenOrIdentity)) return 1;
    this.#disabled.add(tokenOrIdentity);
    let revoked = 0;
    for (const [token, entry] of this.#tokens) {
      if (entry.identity !== tokenOrIdentity) continue;
      this.#tokens.delete(token);
      revoked++;
    }
    return revoked;
  }

  /** Enable a revoked identity again; tokens revoked earlier stay dead. */
  restore(identity: string): void {
    this.#disabled.delete(identity);
  }

  /** Whether `identity` was revoked and not restored. */
  isDisabled(identity: string): boolean {
    return this.#disabled.has(identity);
  }

  /** Bind `role` to `identity` on `bucket` (default: every bucket). Idempotent. */
  grant(identity: string, role: Role, bucket: string = ALL_BUCKETS): void {
    checkRole(role);
    let perBucket = this.#bindings.get(identity);
    if (!perBucket) this.#bindings.set(identity, (perBucket = new Map()));
    let roles = perBucket.get(bucket);
    if (!roles) perBucket.set(bucket, (roles = new Set()));
    roles.add(role);
  }

  /**
   * Remove the binding of `role` to `identity` on exactly `bucket` (a grant on
   * `*` is only removed by revoking it on `*`). Idempotent.
   */
  revokeRole(identity: string, role: Role, bucket: string = ALL_BUCKETS): void {
    checkRole(role);
    this.#bindings.get(identity)?.get(bucket)?.delete(role);
  }

  /** The roles `identity` holds on `bucket`, directly or through `*`, sorted. */
  rolesOf(identity: string, bucket: string): Role[] {
    const perBucket = this.#bindings.get(identity);
    if (!perBucket) return [];
    const roles = new Set<Role>([...(perBucket.get(bucket) ?? []), ...(perBucket.get(ALL_BUCKETS) ?? [])]);
    return [...roles].sort();
  }

  /** The permissions `identity` holds on `bucket`, sorted; empty when disabled. */
  permissionsOf(identity: string, bucket: string): Permission[] {
    if (this.#disabled.has(identity)) return [];
    const permissions = new Set<Permission>();
    for (const role of this.rolesOf(identity, bucket)) for (const p of ROLE_PERMISSIONS[role]) permissions.add(p);
    return [...permissions].sort();
  }

  /** Whether `identity` holds `permission` on `bucket`; never for a disabled identity. */
  allowed(identity: string, permission: Permission, bucket: string): boolean {
    if (this.#disabled.has(identity)) return false;
    return this.rolesOf(identity, bucket).some((role) => ROLE_PERMISSIONS[role].includes(permission));
  }

  /** Drop expired tokens so a long-running stack does not accumulate them. */
  #prune(): void {
    const now = this.#now();
    for (const [token, entry] of this.#tokens) if (entry.expiresAt <= now) this.#tokens.delete(token);
  }
}

function checkRole(role: string): void {
  if (!isRole(role)) throw new UsageError(`unknown role "${role}"`, `use one of ${Object.keys(ROLE_PERMISSIONS).join(', ')}`);
}
