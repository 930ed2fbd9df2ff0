/**
 * Splits a Server-Sent Events body into frames as its chunks arrive, for tests that read
 * streams by hand.
 */

/** Collects chunks and hands out each frame (the text before its blank line) once it is whole. */
export class SseFrames {
  readonly #decoder = new TextDecoder();
  #buffer = "";

  /** The frames this chunk completes, in order; a partial frame waits for the next chunk. */
  push(chunk: Uint8Array): string[] {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    const frames = this.#buffer.split("\n\n");
    this.#buffer = frames.pop() ?? "";
    return frames;
  }
}

/** The frame's `data:` line, or `undefined` (a comment or keep-alive frame). */
export function frameData(frame: string): string | undefined {
  return /^data: (.*)$/m.exec(frame)?.[1];
}

/** The frame's numeric `id:`, or `undefined` when it has none. */
export function frameId(frame: string): number | undefined {
  const id = /^id: (\d+)$/m.exec(frame)?.[1];
  return id === undefined ? undefined : Number(id);
}
