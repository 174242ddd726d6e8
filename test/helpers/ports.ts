/**
 * A free loopback port for test servers: the same helper the local stack
 * uses (local/process/port.ts). Another process may take the port before the
 * caller binds, so callers that start servers retry on "address in use"
 * (startCluster does).
 */
export { freePort } from '../../local/process/port.ts';
