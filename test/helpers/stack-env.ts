/**
 * Running this test process as a host of a local stack would run:
 * google-auth-library (behind @google-cloud/storage and the Pub/Sub client)
 * reads its environment itself, so the stack's variables go into
 * process.env, with HOME and CLOUDSDK_CONFIG in the stack's directory so that
 * no gcloud ADC file of this machine wins over the metadata stand-in.
 */
import type { LocalStack } from '../../local/stack.ts';

/** Put `stack.env` into process.env and hide the machine's own credentials. For one stack per test file. */
export function adoptStackEnv(stack: LocalStack): void {
  for (const [k, v] of Object.entries(stack.env)) process.env[k] = v;
  process.env.HOME = stack.dir;
  process.env.CLOUDSDK_CONFIG = stack.dir;
  delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
}
