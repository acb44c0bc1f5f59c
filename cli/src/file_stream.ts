/**
 * A file's bytes as a `ReadableStream`, over a runtime's open/read/close.
 *
 * @module
 */

/** An open file, as the stream reads it. */
export interface OpenFile {
  /** Reads into `buffer`; returns the byte count, or null at the end of the file. */
  read(buffer: Uint8Array): Promise<number | null>;
  close(): void | Promise<void>;
}

/** Size of each piece read. */
export const READ_SIZE = 1024 * 1024;

/** The file `open()` opens (lazily, on the first read), read in fresh pieces. */
export function fileStream(open: () => Promise<OpenFile>): ReadableStream<Uint8Array> {
  let file: OpenFile | undefined;
  let closed = false;
  const close = async () => {
    if (file && !closed) {
      closed = true;
      await file.close();
    }
    closed = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      file ??= await open();
      // A fresh buffer per read: the consumer may keep the pieces.
      const buffer = new Uint8Array(READ_SIZE);
      const read = await file.read(buffer);
      if (read === null) {
        await close();
        controller.close();
      } else controller.enqueue(buffer.subarray(0, read));
    },
    cancel: close,
  });
}
