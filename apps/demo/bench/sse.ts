/**
 * A small Server-Sent Events reader for the bench's clients: splits a body into frames and hands
 * each frame's `data` to a callback, without building more than it needs.
 */

/**
 * Reads `body` to its end, calling `onData(data)` for every frame that has data. Frames end at a
 * blank line; the search for it resumes where the last one stopped, so a large frame arriving in
 * many chunks is scanned once.
 * @returns the number of frames with data
 */
export async function readSse(body: AsyncIterable<Uint8Array>, onData: (data: string) => void): Promise<number> {
  const decoder = new TextDecoder();
  let pending = "";
  let searchFrom = 0;
  let frames = 0;
  const takeFrames = (): void => {
    for (;;) {
      const end = pending.indexOf("\n\n", searchFrom);
      if (end === -1) {
        searchFrom = Math.max(0, pending.length - 1);
        return;
      }
      const frame = pending.slice(0, end);
      pending = pending.slice(end + 2);
      searchFrom = 0;
      let data: string | undefined;
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const value = line.slice(line.charAt(5) === " " ? 6 : 5);
        data = data === undefined ? value : `${data}\n${value}`;
      }
      if (data !== undefined) {
        frames++;
        onData(data);
      }
    }
  };
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    takeFrames();
  }
  pending += decoder.decode();
  if (pending.trim() !== "") {
    pending += "\n\n";
    takeFrames();
  }
  return frames;
}

/** The `type` of an ACP event's JSON, without parsing the (possibly large) rest when it comes first. */
export function eventType(data: string): string | undefined {
  return /^\{"type":"([^"]+)"/.exec(data)?.[1] ?? (JSON.parse(data) as { type?: string }).type;
}
