/**
 * What a person at a terminal reads: lines that stay, and one status line that updates in place
 * on a TTY (carriage return and erase-line, cut to the width so it never wraps). When stdout is
 * not a TTY (a file, a pipe, CI) every status is a plain line of its own.
 */
export interface Screen {
  readonly tty: boolean;
  /** A line that stays (it replaces a status line on screen). */
  line(text: string): void;
  /** The line that updates in place. */
  status(text: string): void;
  /** Ends a status line, so that what follows starts on a line of its own. */
  end(): void;
}

export function screen(out: NodeJS.WriteStream = process.stdout): Screen {
  const tty = Boolean(out.isTTY);
  let open = false;
  const fit = (s: string) => (out.columns ? s.slice(0, Math.max(20, out.columns - 1)) : s);
  return {
    tty,
    line(text) {
      out.write(open ? `\r\x1b[K${text}\n` : `${text}\n`);
      open = false;
    },
    status(text) {
      if (!tty) return void out.write(`${text}\n`);
      out.write(`\r\x1b[K${fit(text)}`);
      open = true;
    },
    end() {
      if (open) out.write("\n");
      open = false;
    },
  };
}
