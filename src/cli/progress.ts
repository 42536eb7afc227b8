/**
 * @module cli/progress
 * Progress of long work: on a terminal, one bar redrawn in place with rate, ETA and the latest
 * metrics; elsewhere (CI logs, pipes), nothing until `line()` is called, so logs get one line per
 * epoch or round instead of thousands of carriage returns.
 */
export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;

  constructor(
    private total: number,
    private label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY) && process.env["CI"] !== "true";
  }

  /** Restarts the bar for a new phase (e.g. the next epoch). */
  reset(total: number, label: string): void {
    this.total = total;
    this.label = label;
    this.done = 0;
  }

  tick(n = 1, info = ""): void {
    this.done += n;
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && this.done < this.total) return;
    this.lastDraw = now;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : 0;
    const bar = `${"#".repeat(filled)}${".".repeat(width - filled)}`;
    this.stream.write(`\r\x1b[K${this.label} [${bar}] ${this.done}/${this.total} ${rate.toFixed(1)}/s eta ${formatSeconds(eta)} ${info}`);
  }

  /** A permanent line (clears the bar first on a terminal). */
  line(text: string): void {
    this.stream.write(this.tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  }

  /** Clears the bar. */
  finish(): void {
    if (this.tty) this.stream.write("\r\x1b[K");
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
