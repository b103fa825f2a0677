/**
 * MPEG audio frames, walked header by header (ISO/IEC 11172-3 §2.4.2.3, 13818-3 for the half
 * rates). An MP3 file is frames between optional tags; two files joined are one valid stream once
 * the tags, and the Xing/Info frame that describes one file's length, are taken out.
 */
import { MalformedAudio } from './wav.js';

export interface Mp3Frames {
  /** The audio frames only: no ID3v2 or ID3v1 tag, no Xing/Info/VBRI frame, no truncated last frame. */
  frames: Buffer;
  frameCount: number;
  sampleRate: number;
  channels: 1 | 2;
  durationMs: number;
}

interface FrameHeader {
  length: number;
  samples: number;
  sampleRate: number;
  channels: 1 | 2;
  /** Where the side information ends: the Xing/Info tag sits there in a Layer III frame. */
  sideInfoEnd: number;
}

// Kilobits per second by [version is MPEG-1][layer 1..3][index].
const BITRATES: Record<'v1' | 'v2', readonly (readonly number[])[]> = {
  v1: [
    [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  v2: [
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
};
// Hertz by version bits (0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1) and index.
const SAMPLE_RATES: Record<number, readonly number[]> = { 0: [11025, 12000, 8000], 2: [22050, 24000, 16000], 3: [44100, 48000, 32000] };

/** The frame starting at `offset`, or null when no valid header is there (free-format frames included: their length is unknowable here). */
export function readFrameHeader(buffer: Buffer, offset: number): FrameHeader | null {
  if (offset + 4 > buffer.length) return null;
  const b1 = buffer[offset + 1]!;
  const b2 = buffer[offset + 2]!;
  const b3 = buffer[offset + 3]!;
  if (buffer[offset] !== 0xff || (b1 & 0xe0) !== 0xe0) return null;
  const versionBits = (b1 >> 3) & 3;
  const layer = 4 - ((b1 >> 1) & 3); // bits 01 = Layer III
  const bitrateIndex = b2 >> 4;
  const rateIndex = (b2 >> 2) & 3;
  if (versionBits === 1 || layer === 4 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return null;
  const v1 = versionBits === 3;
  const bitrate = BITRATES[v1 ? 'v1' : 'v2'][layer - 1]![bitrateIndex]! * 1000;
  const sampleRate = SAMPLE_RATES[versionBits]![rateIndex]!;
  const padding = (b2 >> 1) & 1;
  const channels = b3 >> 6 === 3 ? 1 : 2;
  let length: number;
  let samples: number;
  if (layer === 1) {
    length = (Math.floor((12 * bitrate) / sampleRate) + padding) * 4;
    samples = 384;
  } else if (layer === 2 || v1) {
    length = Math.floor((144 * bitrate) / sampleRate) + padding;
    samples = 1152;
  } else {
    length = Math.floor((72 * bitrate) / sampleRate) + padding;
    samples = 576;
  }
  const crc = (b1 & 1) === 0 ? 2 : 0;
  const sideInfo = layer !== 3 ? 0 : v1 ? (channels === 1 ? 17 : 32) : channels === 1 ? 9 : 17;
  return { length, samples, sampleRate, channels, sideInfoEnd: 4 + crc + sideInfo };
}

/** Bytes of the ID3v2 tags at the start (there may be several, and a footer). */
function id3v2Length(buffer: Buffer): number {
  let offset = 0;
  while (offset + 10 <= buffer.length && buffer.toString('latin1', offset, offset + 3) === 'ID3') {
    // The size is "syncsafe": four bytes of seven bits each.
    const size = ((buffer[offset + 6]! & 0x7f) << 21) | ((buffer[offset + 7]! & 0x7f) << 14) | ((buffer[offset + 8]! & 0x7f) << 7) | (buffer[offset + 9]! & 0x7f);
    const footer = buffer[offset + 5]! & 0x10 ? 10 : 0;
    offset += 10 + size + footer;
  }
  return Math.min(offset, buffer.length);
}

function isXingFrame(buffer: Buffer, offset: number, header: FrameHeader): boolean {
  const tag = buffer.toString('latin1', offset + header.sideInfoEnd, offset + header.sideInfoEnd + 4);
  return tag === 'Xing' || tag === 'Info' || buffer.toString('latin1', offset + 36, offset + 40) === 'VBRI';
}

/** A header whose successor is a header too (or the end): a lone 0xFFE in tag padding is not a frame. */
function startsStream(buffer: Buffer, offset: number): boolean {
  const first = readFrameHeader(buffer, offset);
  if (!first) return false;
  const next = offset + first.length;
  return next >= buffer.length || readFrameHeader(buffer, next) !== null || isTrailer(buffer, next);
}

function isTrailer(buffer: Buffer, offset: number): boolean {
  const head = buffer.toString('latin1', offset, offset + 8);
  return head.startsWith('TAG') || head === 'APETAGEX' || head.startsWith('LYRICS') || head.startsWith('ID3');
}

/**
 * The frames of an MP3 file. Throws MalformedAudio when no frame is found, or when something
 * other than a tag or a cut-off last frame follows them: joining such a file would put noise
 * in the middle of a narration.
 */
export function readMp3(buffer: Buffer): Mp3Frames {
  let offset = id3v2Length(buffer);
  // Some encoders leave zero padding after the tag: look a little further for the first frame.
  const limit = Math.min(buffer.length, offset + 64 * 1024);
  while (offset < limit && !startsStream(buffer, offset)) offset++;
  const kept: Buffer[] = [];
  let frameCount = 0;
  let samples = 0;
  let format: FrameHeader | undefined;
  let first = true;
  while (offset < buffer.length) {
    const header = readFrameHeader(buffer, offset);
    if (!header) break;
    if (offset + header.length > buffer.length) {
      offset = buffer.length; // a frame cut off by the end of the file: unplayable, dropped
      break;
    }
    if (first && isXingFrame(buffer, offset, header)) {
      first = false;
      offset += header.length;
      continue;
    }
    first = false;
    if (format && (header.sampleRate !== format.sampleRate || header.channels !== format.channels)) {
      throw new MalformedAudio(`the MP3 changes format mid-stream (${format.sampleRate} Hz to ${header.sampleRate} Hz)`);
    }
    format ??= header;
    kept.push(buffer.subarray(offset, offset + header.length));
    frameCount++;
    samples += header.samples;
    offset += header.length;
  }
  if (!format) throw new MalformedAudio('no MPEG audio frame found');
  if (offset < buffer.length && !isTrailer(buffer, offset)) {
    throw new MalformedAudio(`unreadable bytes at offset ${offset} of ${buffer.length} after ${frameCount} MP3 frames`);
  }
  return {
    frames: Buffer.concat(kept),
    frameCount,
    sampleRate: format.sampleRate,
    channels: format.channels,
    durationMs: Math.round((samples / format.sampleRate) * 1000),
  };
}

export function isMp3(buffer: Buffer): boolean {
  try {
    readMp3(buffer);
    return true;
  } catch {
    return false;
  }
}

/** Milliseconds of audio in an MP3, from its frames; null when they cannot be walked. */
export function mp3DurationMs(buffer: Buffer): number | null {
  try {
    return readMp3(buffer).durationMs;
  } catch {
    return null;
  }
}
