/**
 * The promise itself, marked as handled: work started in the background may
 * fail before anyone awaits it (or when nobody will, after another failure),
 * which must not end the process as an unhandled rejection. Whoever awaits
 * it still gets the error.
 */
export function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}
