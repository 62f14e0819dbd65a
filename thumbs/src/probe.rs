//! Reading an image's header without decoding it: the format (from the content), the
//! dimensions, and how much memory its decoder will need besides the decoded image.
//!
//! The JPEG and WebP headers are read here rather than by the decoders: `image`'s JPEG decoder
//! reads the whole file into memory before it says anything, and the WebP decoder allocates a
//! metadata chunk at the size the chunk claims, which may be far more than the file holds.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{ImageDecoder, ImageFormat, Limits};

use crate::Error;

/// Bytes a JPEG header may have between segments before it is taken for garbage: a few are
/// common, megabytes are not a photo (and scanning them would be slow).
const JPEG_GARBAGE: u32 = 1 << 20;

/// What the PNG decoder may allocate for itself (the compressed-data window, a few rows and
/// metadata chunks: text, ICC profile, EXIF), besides rows counted separately.
pub(crate) const PNG_ALLOWANCE: u64 = 8 << 20;

/// The formats decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
}

/// What the header says.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) format: Format,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Bytes of the decoded image (width x height x bytes per pixel of the decoder's output).
    pub(crate) decoded_bytes: u64,
    /// Bytes the decoder allocates besides the decoded image (its copy of the file, JPEG
    /// coefficients, WebP frame buffers, a GIF frame...), estimated generously.
    pub(crate) decoder_bytes: u64,
    /// The length of the file when probed; the JPEG decoder reads this much, no more.
    pub(crate) file_len: u64,
}

/// Reads the header of the image in `reader` (at its start, `file_len` bytes long), and leaves
/// `reader` anywhere.
pub(crate) fn probe(reader: &mut BufReader<File>, file_len: u64) -> Result<Header, Error> {
    let format = sniff(reader)?;
    let (width, height, decoded_bytes, decoder_bytes) = match format {
        Format::Jpeg => {
            let frame = jpeg_frame(reader).map_err(truncated)?;
            let (w, h) = (u64::from(frame.width), u64::from(frame.height));
            let decoded = w * h * u64::from(frame.components);
            // Its copy of the file, copies of metadata segments (ICC profile, XMP), and ours
            // while it copies.
            let extra = file_len.saturating_mul(3);
            // All of a progressive image's coefficients (i16), in whole blocks; a baseline
            // image needs a few block rows.
            let (w, h) = (w.next_multiple_of(32), h.next_multiple_of(32));
            let components = u64::from(frame.components);
            let coefficients = if frame.progressive { w * h * components * 2 } else { w * 32 * components * 2 * 2 };
            (frame.width, frame.height, decoded, extra.saturating_add(coefficients))
        }
        Format::Png => {
            let decoder = PngDecoder::with_limits(&mut *reader, png_header_limits()).map_err(header_refusal)?;
            let (w, h) = decoder.dimensions();
            let row = decoder.total_bytes() / u64::from(h.max(1));
            (w, h, decoder.total_bytes(), PNG_ALLOWANCE.saturating_add(row.saturating_mul(4)))
        }
        Format::Gif => {
            let decoder = GifDecoder::new(&mut *reader).map_err(header_refusal)?;
            let (w, h) = decoder.dimensions();
            // A first frame that does not cover the screen is decoded apart, then copied.
            (w, h, decoder.total_bytes(), decoder.total_bytes().saturating_add(1 << 20))
        }
        Format::WebP => {
            let animated = webp_chunks(reader, file_len).map_err(truncated)?;
            reader.seek(SeekFrom::Start(0))?;
            let decoder = WebPDecoder::new(&mut *reader).map_err(header_refusal)?;
            let (w, h) = decoder.dimensions();
            let pixels = u64::from(w).next_multiple_of(16) * u64::from(h).next_multiple_of(16);
            // Lossy: the YUV planes; lossless or with alpha: a transform buffer of 4 bytes per
            // pixel and an alpha plane; animated: a canvas and a frame of 4 bytes per pixel.
            let per_pixel = if animated { 10 } else { 7 };
            (w, h, decoder.total_bytes(), (pixels * per_pixel).saturating_add(file_len))
        }
    };
    if width == 0 || height == 0 {
        return Err(corrupt("the image has no pixels"));
    }
    Ok(Header { format, width, height, decoded_bytes, decoder_bytes, file_len })
}

/// The limits of a PNG decoder reading the header: only metadata chunks are read.
fn png_header_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(PNG_ALLOWANCE);
    limits
}

/// The format, from the first bytes.
fn sniff(reader: &mut BufReader<File>) -> Result<Format, Error> {
    let mut start = Vec::with_capacity(16);
    reader.by_ref().take(16).read_to_end(&mut start)?;
    reader.seek(SeekFrom::Start(0))?;
    match image::guess_format(&start) {
        Ok(ImageFormat::Jpeg) => Ok(Format::Jpeg),
        Ok(ImageFormat::Png) => Ok(Format::Png),
        Ok(ImageFormat::Gif) => Ok(Format::Gif),
        Ok(ImageFormat::WebP) => Ok(Format::WebP),
        Ok(other) => Err(Error::Unsupported { what: format!("{other:?} images").to_lowercase() }),
        Err(_) => Err(Error::Unsupported { what: "not a known image format".into() }),
    }
}

/// A JPEG's frame header (SOF).
#[derive(Debug)]
struct JpegFrame {
    width: u32,
    height: u32,
    components: u8,
    progressive: bool,
}

/// Reads JPEG segments from the start up to the first scan, and returns the one frame header.
fn jpeg_frame(r: &mut BufReader<File>) -> io::Result<JpegFrame> {
    let mut soi = [0; 2];
    r.read_exact(&mut soi)?;
    if soi != [0xFF, 0xD8] {
        return Err(invalid("no start of image"));
    }
    let mut frame = None;
    let mut garbage = 0;
    loop {
        match next_marker(r, &mut garbage)? {
            // Restart markers and TEM stand alone; SOS starts the entropy-coded data.
            0x01 | 0xD0..=0xD7 => continue,
            0xDA => break,
            0xD8 | 0xD9 => return Err(invalid("no scan")),
            code => {
                let length = u16::from_be_bytes(read_array(r)?);
                let body = i64::from(length.checked_sub(2).ok_or_else(|| invalid("bad segment length"))?);
                // SOF0 to SOF15, except DHT (C4), JPG (C8) and DAC (CC).
                if matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC) {
                    if frame.is_some() {
                        return Err(invalid("more than one frame header"));
                    }
                    if body < 6 {
                        return Err(invalid("short frame header"));
                    }
                    let [_precision, h0, h1, w0, w1, components] = read_array(r)?;
                    if !(1..=4).contains(&components) {
                        return Err(invalid("bad number of components"));
                    }
                    let progressive = matches!(code, 0xC2 | 0xC6 | 0xCA | 0xCE);
                    let height = u32::from(u16::from_be_bytes([h0, h1]));
                    let width = u32::from(u16::from_be_bytes([w0, w1]));
                    frame = Some(JpegFrame { width, height, components, progressive });
                    r.seek_relative(body - 6)?;
                } else {
                    r.seek_relative(body)?;
                }
            }
        }
    }
    frame.ok_or_else(|| invalid("no frame header"))
}

/// The code of the next JPEG marker: skips to a 0xFF, then over fill bytes (0xFF), counting
/// the bytes skipped in `garbage`.
fn next_marker(r: &mut impl BufRead, garbage: &mut u32) -> io::Result<u8> {
    let mut skip = || {
        *garbage += 1;
        if *garbage > JPEG_GARBAGE {
            return Err(invalid("no JPEG segments"));
        }
        Ok(())
    };
    loop {
        let [byte] = read_array(r)?;
        if byte == 0xFF {
            let [mut code] = read_array(r)?;
            while code == 0xFF {
                skip()?;
                [code] = read_array(r)?;
            }
            // 0xFF00 is a stuffed byte of entropy-coded data: garbage here.
            if code != 0 {
                return Ok(code);
            }
        }
        skip()?;
    }
}

/// Checks that every top-level chunk of a WebP file lies within the file, so that the decoder
/// never allocates for a chunk larger than the file; returns whether it is animated.
fn webp_chunks(r: &mut BufReader<File>, file_len: u64) -> io::Result<bool> {
    let riff: [u8; 12] = read_array(r)?;
    if &riff[..4] != b"RIFF" || &riff[8..] != b"WEBP" {
        return Err(invalid("not a WebP file"));
    }
    let mut animated = false;
    let mut position: u64 = 12;
    while position + 8 <= file_len {
        let [a, b, c, d, s0, s1, s2, s3] = read_array(r)?;
        let size = u64::from(u32::from_le_bytes([s0, s1, s2, s3]));
        let end = position + 8 + size;
        if end > file_len {
            return Err(invalid("a chunk runs past the end of the file"));
        }
        animated |= [a, b, c, d] == *b"ANMF";
        let next = end + (size & 1);
        let skip = i64::try_from(next - position - 8).map_err(|_| invalid("chunk too large"))?;
        r.seek_relative(skip)?;
        position = next;
    }
    Ok(animated)
}

fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// A header that ends early or makes no sense is corrupt; other read errors are I/O errors.
fn truncated(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt("truncated header"),
        io::ErrorKind::InvalidData => corrupt(&e.to_string()),
        _ => Error::Io(e),
    }
}

/// A decoder's refusal of a header; only the PNG decoder has a limit here (on metadata).
fn header_refusal(e: image::ImageError) -> Error {
    Error::from_image(e, 0, 0, PNG_ALLOWANCE)
}

fn corrupt(reason: &str) -> Error {
    Error::Corrupt { reason: reason.into() }
}
