import { crc32 } from "node:zlib";

/**
 * On-disk framing shared by the WAL and the snapshot:
 *
 *   magic (4 bytes) | payload length (u32 BE) | CRC32 of length bytes + payload (u32 BE) | payload (UTF-8 JSON)
 *
 * The magic starts with 0xFF, a byte UTF-8 never produces, so a frame start cannot hide inside a JSON
 * payload. That is what lets recovery search the bytes after a bad frame and tell a torn tail (nothing valid
 * follows) from damage in the middle of the file (valid frames follow). The CRC covers the length field
 * too, so a flipped length bit is caught instead of sending the reader to a wrong offset.
 */
const MAGIC = Buffer.from([0xff, 0x57, 0x52, 0x31]);
const HEADER_BYTES = 12;

/** A file whose contents are damaged in a way recovery must not paper over. */
export class CorruptFileError extends Error {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, reason: string) {
    super(
      `${file} is corrupt at byte offset ${offset}: ${reason}. Refusing to open the store; ` +
        "restore the data dir from a backup, or move the file aside to inspect it",
    );
    this.name = "CorruptFileError";
    this.file = file;
    this.offset = offset;
  }
}

export function encodeFrame(payload: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(payload), "utf8");
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  MAGIC.copy(frame, 0);
  frame.writeUInt32BE(body.length, 4);
  body.copy(frame, HEADER_BYTES);
  frame.writeUInt32BE(frameChecksum(frame, 0, body.length), 8);
  return frame;
}

export type DecodeResult = { ok: true; payload: unknown; end: number } | { ok: false; reason: string };

/** Decodes the frame starting at `offset`; never throws. */
export function decodeFrameAt(buf: Buffer, offset: number): DecodeResult {
  if (buf.length - offset < HEADER_BYTES) return { ok: false, reason: "incomplete frame header" };
  if (buf.compare(MAGIC, 0, MAGIC.length, offset, offset + MAGIC.length) !== 0) {
    return { ok: false, reason: "no frame marker" };
  }
  const length = buf.readUInt32BE(offset + 4);
  const end = offset + HEADER_BYTES + length;
  if (end > buf.length) return { ok: false, reason: "frame runs past the end of the file" };
  if (buf.readUInt32BE(offset + 8) !== frameChecksum(buf, offset, length)) {
    return { ok: false, reason: "checksum mismatch" };
  }
  try {
    return { ok: true, payload: JSON.parse(buf.toString("utf8", offset + HEADER_BYTES, end)), end };
  } catch {
    return { ok: false, reason: "payload is not valid JSON" };
  }
}

export interface ScanResult {
  frames: { payload: unknown; offset: number }[];
  /** Length of the valid prefix; bytes after it are a torn tail to truncate. */
  validBytes: number;
  /** Why the first byte after the valid prefix could not be read (undefined when the file is clean). */
  tornReason?: string;
}

/**
 * Reads consecutive frames. A bad frame with nothing valid after it is a torn tail from a write that was
 * never acknowledged; a bad frame followed by a valid one means acknowledged data is damaged, which only
 * a human can decide about, so that throws.
 */
export function scanFrames(buf: Buffer, file: string): ScanResult {
  const frames: ScanResult["frames"] = [];
  let offset = 0;
  while (offset < buf.length) {
    const result = decodeFrameAt(buf, offset);
    if (!result.ok) {
      const next = findValidFrame(buf, offset + 1);
      if (next !== undefined) {
        throw new CorruptFileError(file, offset, `${result.reason}, and a valid record follows at offset ${next}`);
      }
      return { frames, validBytes: offset, tornReason: result.reason };
    }
    frames.push({ payload: result.payload, offset });
    offset = result.end;
  }
  return { frames, validBytes: offset };
}

function findValidFrame(buf: Buffer, from: number): number | undefined {
  for (let at = buf.indexOf(MAGIC, from); at !== -1; at = buf.indexOf(MAGIC, at + 1)) {
    if (decodeFrameAt(buf, at).ok) return at;
  }
  return undefined;
}

function frameChecksum(buf: Buffer, offset: number, length: number): number {
  const lengthBytes = buf.subarray(offset + 4, offset + 8);
  const payload = buf.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
  return crc32(payload, crc32(lengthBytes));
}
