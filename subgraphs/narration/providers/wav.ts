/**
 * RIFF/WAVE reading and writing, just enough for speech: PCM in, PCM out, the INFO tags kept.
 * Chunks are found by walking the file, never assumed at fixed offsets, because providers put
 * LIST, fact or JUNK chunks before the data.
 */

/** Audio bytes that cannot be read as the format they claim to be. */
export class MalformedAudio extends Error {
  override name = 'MalformedAudio';
}

export interface WavFormat {
  /** 1 for integer PCM; for WAVE_FORMAT_EXTENSIBLE, the sub-format's tag. */
  formatTag: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  /** Bytes per sample frame (all channels). */
  blockAlign: number;
}

export interface ParsedWav {
  format: WavFormat;
  /** The `fmt ` chunk's body as sent, so a file is rewritten with exactly the format it had. */
  fmt: Buffer;
  /** The samples, whole frames only. */
  data: Buffer;
  /** Bodies of the LIST chunks of type INFO (each starts with "INFO"). */
  info: Buffer[];
}

const UNKNOWN_SIZE = 0xffffffff;
const EXTENSIBLE = 0xfffe;

export function isWav(buffer: Buffer): boolean {
  return buffer.length >= 12 && buffer.toString('latin1', 0, 4) === 'RIFF' && buffer.toString('latin1', 8, 12) === 'WAVE';
}

export function parseWav(buffer: Buffer): ParsedWav {
  if (!isWav(buffer)) throw new MalformedAudio('not a RIFF/WAVE file');
  let fmt: Buffer | undefined;
  let data: Buffer | undefined;
  const info: Buffer[] = [];
  let offset = 12;
  while (offset + 8 <= buffer.length) {
    const id = buffer.toString('latin1', offset, offset + 4);
    const declared = buffer.readUInt32LE(offset + 4);
    const start = offset + 8;
    const available = buffer.length - start;
    if (id === 'data') {
      // A streamed WAV cannot know its length when the header leaves: OpenAI writes 0xFFFFFFFF
      // and ElevenLabs 0x7FFFFFFF. Either way the samples run to the end of what arrived.
      const size = declared === UNKNOWN_SIZE || declared > available ? available : declared;
      data = buffer.subarray(start, start + size);
      if (size !== declared) break;
    } else {
      if (declared > available) break; // a truncated trailing chunk: nothing after it can be found
      const body = buffer.subarray(start, start + declared);
      if (id === 'fmt ') fmt = body;
      else if (id === 'LIST' && body.toString('latin1', 0, 4) === 'INFO') info.push(body);
    }
    offset = start + declared + (declared % 2); // chunks are padded to an even length
  }
  if (!fmt || fmt.length < 16) throw new MalformedAudio('the WAV has no format chunk');
  if (!data) throw new MalformedAudio('the WAV has no data chunk');
  const format = readFormat(fmt);
  return { format, fmt, data: data.subarray(0, data.length - (data.length % format.blockAlign)), info };
}

function readFormat(fmt: Buffer): WavFormat {
  let formatTag = fmt.readUInt16LE(0);
  const channels = fmt.readUInt16LE(2);
  const sampleRate = fmt.readUInt32LE(4);
  const bitsPerSample = fmt.readUInt16LE(14);
  // The extensible format names the real one in the first two bytes of its sub-format GUID.
  if (formatTag === EXTENSIBLE && fmt.length >= 26) formatTag = fmt.readUInt16LE(24);
  const blockAlign = channels * Math.ceil(bitsPerSample / 8);
  if (channels < 1 || sampleRate < 1 || blockAlign < 1) throw new MalformedAudio(`the WAV format is impossible (${channels} channels, ${sampleRate} Hz, ${bitsPerSample} bits)`);
  return { formatTag, channels, sampleRate, bitsPerSample, blockAlign };
}

/** Milliseconds of audio in a WAV, from its samples (never from its header's sizes). */
export function wavDurationMs(buffer: Buffer): number {
  const { format, data } = parseWav(buffer);
  return pcmDurationMs(format, data.length);
}

export function pcmDurationMs(format: Pick<WavFormat, 'blockAlign' | 'sampleRate'>, bytes: number): number {
  return Math.round((bytes / format.blockAlign / format.sampleRate) * 1000);
}

/** The body of a 16-byte PCM `fmt ` chunk. */
export function pcmFormatChunk(format: { channels: number; sampleRate: number; bitsPerSample: number }): Buffer {
  const blockAlign = format.channels * Math.ceil(format.bitsPerSample / 8);
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(1, 0);
  fmt.writeUInt16LE(format.channels, 2);
  fmt.writeUInt32LE(format.sampleRate, 4);
  fmt.writeUInt32LE(format.sampleRate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(format.bitsPerSample, 14);
  return fmt;
}

/** The body of a LIST chunk of INFO tags (ISFT, ICMT, INAM...): NUL-terminated text, padded to even. */
export function infoList(tags: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from('INFO', 'latin1')];
  for (const [id, text] of Object.entries(tags)) {
    if (!/^[A-Z0-9]{4}$/.test(id)) throw new RangeError(`an INFO tag id is four capitals, got "${id}"`);
    const value = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.alloc(1)]);
    const header = Buffer.alloc(8);
    header.write(id, 0, 'latin1');
    header.writeUInt32LE(value.length, 4);
    parts.push(header, value, Buffer.alloc(value.length % 2));
  }
  return Buffer.concat(parts);
}

/** The text of each INFO tag in a LIST body (the first value wins when a tag repeats). */
export function readInfo(list: Buffer): Record<string, string> {
  const tags: Record<string, string> = {};
  let offset = 4;
  while (offset + 8 <= list.length) {
    const id = list.toString('latin1', offset, offset + 4);
    const size = list.readUInt32LE(offset + 4);
    const value = list.subarray(offset + 8, Math.min(list.length, offset + 8 + size));
    tags[id] ??= value.toString('utf8').replace(/\0+$/, '');
    offset += 8 + size + (size % 2);
  }
  return tags;
}

/** A WAV with sizes that match its contents: `fmt `, then the LIST chunks, then `data`. */
export function encodeWav(fmt: Buffer, data: Buffer, lists: Buffer[] = []): Buffer {
  const chunks = [chunk('fmt ', fmt), ...lists.map((list) => chunk('LIST', list)), chunk('data', data)];
  const header = Buffer.alloc(12);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(4 + chunks.reduce((sum, c) => sum + c.length, 0), 4);
  header.write('WAVE', 8, 'latin1');
  return Buffer.concat([header, ...chunks]);
}

function chunk(id: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body, Buffer.alloc(body.length % 2)]);
}

/** The same audio with its sizes written out: a streamed WAV's placeholders confuse strict readers. */
export function repairWav(buffer: Buffer): Buffer {
  const { fmt, data, info } = parseWav(buffer);
  return encodeWav(fmt, data, info);
}
