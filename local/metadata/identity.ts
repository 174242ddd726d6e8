/**
 * OIDC identity tokens for the metadata-server stand-in's `/identity`
 * endpoint. They carry the claims Google's do (iss, aud, azp, sub, email,
 * iat, exp) but are unsigned (`alg: none`): nothing local verifies them, and a
 * verifier that insists on Google's keys must reject them, which is correct.
 */
import { createHash } from 'node:crypto';

export interface IdentityTokenRequest {
  email: string;
  audience: string;
  ttlSeconds: number;
  /** `format=full`: include email claims, as GCE does */
  full: boolean;
  /** seconds since the epoch; default now */
  now?: number;
}

/** An unsigned JWT (`header.payload.`) for `email` and `audience`. */
export function identityToken(request: IdentityTokenRequest): string {
  const iat = request.now ?? Math.floor(Date.now() / 1000);
  // A stable numeric subject per account, like Google's unique id.
  const sub = BigInt(`0x${createHash('sha256').update(request.email).digest('hex').slice(0, 15)}`).toString();
  const payload: Record<string, unknown> = { iss: 'https://accounts.google.com', aud: request.audience, azp: sub, sub, iat, exp: iat + request.ttlSeconds };
  if (request.full) Object.assign(payload, { email: request.email, email_verified: true });
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.`;
}
