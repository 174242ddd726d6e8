/**
 * Quote untrusted text (a file name, a line of a file) for an error message:
 * JSON string syntax so control characters and newlines cannot break the
 * one-line message, cut to `max` characters so a binary file cannot flood it.
 */
export function quoteForMessage(text: string, max = 60): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut);
}
