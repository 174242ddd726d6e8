/** Quote `s` for sh: bare when it holds only safe characters, else in single quotes. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
