//! Decoding under limits, resizing, orienting and flattening, then encoding the JPEG.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};

use image::codecs::gif::GifDecoder;
use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, Limits, Rgb, RgbImage};

use crate::probe::{Format, Header};
use crate::{Error, Size};

/// The thumbnails' JPEG quality.
const QUALITY: u8 = 80;

/// Memory counted for every decode besides the buffers: the JPEG encoder, readers, tables.
const SLACK: u64 = 1 << 20;

/// How an image becomes its thumbnail, and the memory that takes.
#[derive(Debug)]
pub(crate) struct Plan {
    width: u32,
    height: u32,
    resize: Resize,
    estimate: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resize {
    /// Small enough already: never upscaled.
    Keep,
    /// At least halved: averaging boxes of source pixels is fast and does not alias.
    Average,
    /// Reduced by less than half: a triangle filter, which the box average would alias.
    Triangle,
}

impl Plan {
    pub(crate) fn new(header: &Header, size: Size) -> Plan {
        let (width, height) = fit(header.width, header.height, size.max_side());
        let resize = if (width, height) == (header.width, header.height) {
            Resize::Keep
        } else if header.width >= 2 * width {
            Resize::Average
        } else {
            Resize::Triangle
        };
        let pixels = u64::from(width) * u64::from(height);
        // The thumbnail in the decoder's pixel type (up to 8 bytes), rotated, as RGBA, as RGB.
        let mut resize_bytes = pixels * (8 + 8 + 4 + 3);
        if resize == Resize::Triangle {
            // The vertical pass's output: the source's width, RGBA f32.
            resize_bytes += u64::from(header.width) * u64::from(height) * 16;
        }
        let estimate = header.decoded_bytes.saturating_add(header.decoder_bytes).saturating_add(resize_bytes + SLACK);
        Plan { width, height, resize, estimate }
    }

    /// The memory the decode, resize and encode take, in bytes, generously.
    pub(crate) fn estimate(&self) -> u64 {
        self.estimate
    }
}

/// The size of `width` x `height` scaled to fit in a `side` x `side` box, never enlarged.
fn fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    if width <= side && height <= side {
        return (width, height);
    }
    let (long, short) = (width.max(height), width.min(height));
    let scaled = (u64::from(short) * u64::from(side) + u64::from(long) / 2) / u64::from(long);
    // At most `side` since short <= long.
    let scaled = u32::try_from(scaled).unwrap_or(side).max(1);
    if width >= height {
        (side, scaled)
    } else {
        (scaled, side)
    }
}

/// Decodes the image in `reader` (which `header` describes) and makes it the thumbnail `plan`
/// says, upright and opaque.
pub(crate) fn render(reader: BufReader<File>, header: &Header, plan: &Plan) -> Result<RgbImage, Error> {
    guarded(|| {
        let (image, orientation) = decode(reader, header, plan)?;
        let mut thumbnail = resize(image, plan);
        thumbnail.apply_orientation(orientation);
        Ok(flatten(thumbnail))
    })
}

/// Runs `f`, which reads an image, turning a panic into [`Error::Corrupt`].
///
/// A last defence: decoders have had panics on crafted input (index and arithmetic bugs), and
/// one must not kill the daemon's thread. This needs panic = "unwind" (the workspace's
/// setting); the panic hook still prints the message. `f` changes nothing shared, so nothing
/// is left half-changed.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Corrupt { reason: format!("the decoder panicked: {message}") })
    })
}

/// Encodes `thumbnail` as a JPEG into `out`.
pub(crate) fn encode(thumbnail: &RgbImage, out: &mut impl Write) -> Result<(), Error> {
    JpegEncoder::new_with_quality(out, QUALITY).encode_image(thumbnail).map_err(|e| match e {
        ImageError::IoError(e) => Error::Io(e),
        e => Error::Io(io::Error::other(e.to_string())),
    })
}

/// Decodes the image under limits: the header's dimensions, and for the decoder's own
/// allocations what the estimate allowed.
fn decode(mut reader: BufReader<File>, header: &Header, plan: &Plan) -> Result<(DynamicImage, Orientation), Error> {
    let refusal = |e| Error::from_image(e, header.width, header.height, plan.estimate);
    let mut limits = Limits::default();
    limits.max_image_width = Some(header.width);
    limits.max_image_height = Some(header.height);
    limits.max_alloc = Some(header.decoder_bytes);
    reader.seek(SeekFrom::Start(0))?;
    match header.format {
        Format::Jpeg => {
            // The decoder reads everything there is: give it only what was counted.
            let mut bytes = Vec::new();
            bytes
                .try_reserve_exact(usize::try_from(header.file_len).unwrap_or(usize::MAX))
                .map_err(io::Error::other)?;
            reader.take(header.file_len).read_to_end(&mut bytes)?;
            let decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(refusal)?;
            from_decoder(decoder, header, limits).map_err(refusal)
        }
        Format::Png => {
            let decoder = PngDecoder::with_limits(reader, limits.clone()).map_err(refusal)?;
            from_decoder(decoder, header, limits).map_err(refusal)
        }
        Format::Gif => from_decoder(GifDecoder::new(reader).map_err(refusal)?, header, limits).map_err(refusal),
        Format::WebP => from_decoder(WebPDecoder::new(reader).map_err(refusal)?, header, limits).map_err(refusal),
    }
}

/// The decoded image (the first frame of an animation) and its orientation.
fn from_decoder(
    mut decoder: impl ImageDecoder,
    header: &Header,
    limits: Limits,
) -> Result<(DynamicImage, Orientation), ImageError> {
    // The file may have changed since the probe; the decoder's output must fit the estimate.
    if decoder.dimensions() != (header.width, header.height) || decoder.total_bytes() > header.decoded_bytes {
        let kind = image::error::LimitErrorKind::DimensionError;
        return Err(ImageError::Limits(image::error::LimitError::from_kind(kind)));
    }
    decoder.set_limits(limits)?;
    // Unreadable metadata is no reason to refuse the pixels.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder)?;
    Ok((image, orientation))
}

/// The image at the plan's size; the full-size image is freed on return.
fn resize(image: DynamicImage, plan: &Plan) -> DynamicImage {
    match plan.resize {
        Resize::Keep => image,
        Resize::Average => image.thumbnail_exact(plan.width, plan.height),
        Resize::Triangle => image.resize_exact(plan.width, plan.height, FilterType::Triangle),
    }
}

/// RGB, with any transparency blended onto white.
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (out, pixel) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = pixel.0.map(u16::from);
        // At most (255 * 255 + 127) / 255 = 255.
        let blend = |c: u16| u8::try_from((c * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX);
        *out = Rgb([blend(r), blend(g), blend(b)]);
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(100, 50, 256), (100, 50));
        assert_eq!(fit(256, 256, 256), (256, 256));
        assert_eq!(fit(100_000, 1, 256), (256, 1));
        assert_eq!(fit(1, 65_535, 1280), (1, 1280));
    }

    #[test]
    fn a_panic_becomes_a_corrupt_image() {
        let result: Result<(), Error> = guarded(|| panic!("index out of bounds"));
        assert!(matches!(result, Err(Error::Corrupt { reason }) if reason.contains("index out of bounds")));
    }

    #[test]
    fn transparency_becomes_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = flatten(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }
}
