/**
 * The progress line on stderr: `[3/12] throughput redis: measuring 4/10 s, 5,120 req/s`. On a
 * terminal the line is rewritten in place; otherwise a line is printed per step and every few
 * seconds, so that CI logs stay short.
 */
export class Progress {
  #index = 0;
  #label = "";
  #started = 0;
  #lastPrinted = 0;
  readonly #tty = process.stderr.isTTY === true;

  constructor(public total: number) {}

  /** Starts the next step. */
  step(label: string): void {
    this.#index++;
    this.#label = label;
    this.#started = performance.now();
    this.#write(`${this.#prefix()} …`, true);
  }

  /** Says what the current step is doing now. */
  update(detail: string): void {
    const now = performance.now();
    if (!this.#tty && now - this.#lastPrinted < 5000) return;
    this.#write(`${this.#prefix()}: ${detail}`, false);
  }

  /** Ends the current step with its result. */
  done(summary: string): void {
    const seconds = ((performance.now() - this.#started) / 1000).toFixed(1);
    this.#write(`${this.#prefix()}: ${summary} (${seconds} s)`, true);
    if (this.#tty) process.stderr.write("\n");
  }

  #prefix(): string {
    return `[${this.#index}/${this.total}] ${this.#label}`;
  }

  #write(text: string, always: boolean): void {
    this.#lastPrinted = performance.now();
    if (this.#tty) process.stderr.write(`\r\x1b[K${text}`);
    else if (always || text) process.stderr.write(`${text}\n`);
  }
}

/** 12345.6 → "12,346". */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}
