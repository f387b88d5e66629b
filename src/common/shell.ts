// Quoting for text a person pastes into a POSIX shell (the CLI's `export …` lines and commands).

/** `sh` single quotes, so a printed command can be pasted as is. */
export function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}
