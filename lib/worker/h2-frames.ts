/**
 * @module Counts what an HTTP/2 client sends, frame by frame, before nghttp2 sees the bytes: new streams
 * (HEADERS on a stream id above every earlier one) and stream resets (RST_STREAM). Only the 9-byte frame headers
 * are read; payloads are skipped by their length, so a large upload costs one comparison per chunk. nghttp2 tells
 * nobody who reset a stream (the peer or the server), and by the time a stream event reaches JavaScript a whole
 * read of frames has been processed: counting here lets the connection guard act on a chunk before it is.
 */

const FRAME_HEADER = 9;
/** The client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": skipped, nghttp2 checks it. */
const PREFACE_LENGTH = 24;
const TYPE_HEADERS = 1;
const TYPE_RST_STREAM = 3;

export class FrameCounter {
  /** Client-initiated streams opened so far. */
  streams = 0;
  /** RST_STREAM frames received so far. */
  resets = 0;
  /** Payload (or preface) bytes still to skip before the next frame header. */
  #skip = PREFACE_LENGTH;
  #lastStream = 0;
  /** A frame header split across chunks (allocated only when that happens). */
  #partial: Buffer | null = null;
  #partialLength = 0;

  /** Count the frames that start in `chunk`; returns the number of RST_STREAM frames among them. */
  scan(chunk: Buffer): number {
    const before = this.resets;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.#skip > 0) {
        const k = Math.min(this.#skip, n - i);
        this.#skip -= k;
        i += k;
        continue;
      }
      if (this.#partialLength > 0 || n - i < FRAME_HEADER) {
        const head = (this.#partial ??= Buffer.allocUnsafe(FRAME_HEADER));
        const k = Math.min(FRAME_HEADER - this.#partialLength, n - i);
        chunk.copy(head, this.#partialLength, i, i + k);
        this.#partialLength += k;
        i += k;
        if (this.#partialLength < FRAME_HEADER) break;
        this.#partialLength = 0;
        this.#frame(head, 0);
        continue;
      }
      this.#frame(chunk, i);
      i += FRAME_HEADER;
    }
    return this.resets - before;
  }

  #frame(b: Buffer, at: number): void {
    this.#skip = (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!;
    const type = b[at + 3];
    if (type === TYPE_RST_STREAM) {
      this.resets++;
    } else if (type === TYPE_HEADERS) {
      const id = b.readUInt32BE(at + 5) & 0x7fffffff;
      // Odd ids are the client's; a HEADERS on an existing stream (trailers) opens nothing.
      if ((id & 1) === 1 && id > this.#lastStream) {
        this.#lastStream = id;
        this.streams++;
      }
    }
  }
}
