//! The thumbnailer through its public API, on images made here with the `image` crate.

// A failed unwrap is a failed test, with its location: exactly what helpers here want.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clearskies_thumbs::{placeholder_svg, Error, Size, Thumbnailer};
use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

const BUDGET: u64 = 300 << 20;

#[test]
fn every_format_becomes_a_jpeg_that_fits_with_its_aspect_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let image = DynamicImage::ImageRgb8(gradient(600, 400));
    for (n, format) in
        [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP, ImageFormat::Gif].into_iter().enumerate()
    {
        // Named .bin: the format comes from the content.
        let source = write(dir.path(), &format!("photo{n}.bin"), &encode(&image, format));
        let thumbnail = thumbs.thumbnail(&source, &key(n), Size::Small).unwrap();
        assert_eq!(thumbnail, dir.path().join("cache").join(&key(n)[..2]).join(format!("{}-256.jpg", key(n))));
        assert_eq!(jpeg_size(&thumbnail), (256, 171), "{format:?}");
        // Not enlarged.
        let large = thumbs.thumbnail(&source, &key(n), Size::Large).unwrap();
        assert_eq!(jpeg_size(&large), (600, 400), "{format:?}");
    }
}

#[test]
fn transparency_and_tall_images() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(300, 900, Rgba([0, 0, 0, 0])));
    let source = write(dir.path(), "clear.png", &encode(&clear, ImageFormat::Png));
    let thumbnail = thumbs.thumbnail(&source, &key(1), Size::Small).unwrap();
    let decoded = image::open(&thumbnail).unwrap().into_rgb8();
    assert_eq!(decoded.dimensions(), (85, 256));
    assert!(decoded.pixels().all(|p| p.0.iter().all(|&c| c > 245)), "transparent becomes white");
}

#[test]
fn the_exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    // Wide: red on the left, blue on the right.
    let wide = RgbImage::from_fn(300, 100, |x, _| if x < 150 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let jpeg = with_exif_orientation(&encode(&DynamicImage::ImageRgb8(wide), ImageFormat::Jpeg), 6);
    let source = write(dir.path(), "rotated.jpg", &jpeg);
    let thumbnail = thumbs.thumbnail(&source, &key(1), Size::Small).unwrap();
    let upright = image::open(&thumbnail).unwrap().into_rgb8();
    // Orientation 6: turned 90 degrees clockwise, so the left (red) is now at the top.
    assert_eq!(upright.dimensions(), (85, 256));
    let top = upright.get_pixel(42, 10).0;
    let bottom = upright.get_pixel(42, 245).0;
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
}

#[test]
fn an_animated_gif_gives_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let mut gif = Vec::new();
    let frames =
        [Rgba([255, 0, 0, 255]), Rgba([0, 0, 255, 255])].map(|c| Frame::new(RgbaImage::from_pixel(400, 300, c)));
    GifEncoder::new(&mut gif).encode_frames(frames).unwrap();
    let source = write(dir.path(), "animated.gif", &gif);
    let thumbnail = thumbs.thumbnail(&source, &key(1), Size::Small).unwrap();
    let first = image::open(&thumbnail).unwrap().into_rgb8();
    assert_eq!(first.dimensions(), (256, 192));
    let [r, _, b] = first.get_pixel(128, 96).0;
    assert!(r > 200 && b < 60, "{r} {b}");
}

#[test]
fn a_cached_thumbnail_is_served_without_the_source_and_marked_recent() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let source =
        write(dir.path(), "photo.png", &encode(&DynamicImage::ImageRgb8(gradient(500, 500)), ImageFormat::Png));
    let made = thumbs.thumbnail(&source, &key(1), Size::Small).unwrap();
    let old = SystemTime::now() - Duration::from_secs(86_400);
    File::options().write(true).open(&made).unwrap().set_modified(old).unwrap();
    fs::remove_file(&source).unwrap();
    let started = Instant::now();
    let served = thumbs.thumbnail(&source, &key(1), Size::Small).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(served, made);
    assert!(elapsed < Duration::from_millis(50), "{elapsed:?}");
    let modified = fs::metadata(&served).unwrap().modified().unwrap();
    assert!(modified > old + Duration::from_secs(3600));
    // Another size is not cached, and the source is gone.
    assert!(matches!(thumbs.thumbnail(&source, &key(1), Size::Large), Err(Error::Io(_))));
}

#[test]
fn a_decompression_bomb_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    // A valid 1x1 PNG whose header claims 100000x100000 (30 GB of RGB).
    let mut png = encode(&DynamicImage::ImageRgb8(RgbImage::new(1, 1)), ImageFormat::Png);
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let source = write(dir.path(), "bomb.png", &png);
    let started = Instant::now();
    let refused = thumbs.thumbnail(&source, &key(1), Size::Small);
    assert!(
        matches!(refused, Err(Error::TooLarge { width: 100_000, height: 100_000, needed }) if needed > 30_000_000_000),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // The same for a JPEG header that claims 65535x65535.
    let mut jpeg = encode(&DynamicImage::ImageRgb8(RgbImage::new(8, 8)), ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    let source = write(dir.path(), "bomb.jpg", &jpeg);
    let refused = thumbs.thumbnail(&source, &key(2), Size::Small);
    assert!(matches!(refused, Err(Error::TooLarge { width: 65_535, height: 65_535, .. })), "{refused:?}");
    assert!(fs::read_dir(dir.path().join("cache")).is_err(), "nothing cached");
}

#[test]
fn a_header_that_lies_stops_at_the_decoders_limit() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    // A GIF whose screen is 1x1 but whose frame is 1200x1200 (5.8 MB as RGBA).
    let mut gif = Vec::new();
    let frame = Frame::new(RgbaImage::from_pixel(1200, 1200, Rgba([9, 9, 9, 255])));
    GifEncoder::new(&mut gif).encode_frame(frame).unwrap();
    gif[6..10].copy_from_slice(&[1, 0, 1, 0]);
    let source = write(dir.path(), "liar.gif", &gif);
    let refused = thumbs.thumbnail(&source, &key(1), Size::Small);
    assert!(matches!(refused, Err(Error::TooLarge { width: 1, height: 1, .. })), "{refused:?}");
}

#[test]
fn a_webp_chunk_longer_than_the_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let mut webp = encode(&DynamicImage::ImageRgb8(gradient(20, 20)), ImageFormat::WebP);
    assert_eq!(&webp[12..16], b"VP8L");
    webp[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let source = write(dir.path(), "long.webp", &webp);
    let refused = thumbs.thumbnail(&source, &key(1), Size::Small);
    assert!(matches!(&refused, Err(Error::Corrupt { reason }) if reason.contains("past the end")), "{refused:?}");
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let mut random = Lcg(7);
    let garbage: Vec<u8> = (0..5000).map(|_| random.byte()).collect();
    let mut png_garbage = b"\x89PNG\r\n\x1a\n".to_vec();
    png_garbage.extend_from_slice(&garbage);
    let mut riff_garbage = b"RIFF\x00\x10\x00\x00WEBPVP8X".to_vec();
    riff_garbage.extend_from_slice(&garbage);
    for (n, bytes) in
        [&b""[..], b"hello", &garbage, &png_garbage, &riff_garbage, b"\xFF\xD8\xFF\xE1\xFF\xFF"].iter().enumerate()
    {
        let source = write(dir.path(), "garbage", bytes);
        let refused = thumbs.thumbnail(&source, &key(n), Size::Small);
        assert!(matches!(refused, Err(Error::Unsupported { .. } | Error::Corrupt { .. })), "{n}: {refused:?}");
    }
    let image = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 48, |x, y| Rgba([byte(x * 4), byte(y * 5), 99, 200])));
    let mut n = 100;
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP, ImageFormat::Gif] {
        let good = encode(&image, format);
        let mut damaged: Vec<Vec<u8>> =
            [1, 2, 10, 30, good.len() / 2, good.len() - 1].map(|l| good[..l].to_vec()).into();
        for _ in 0..40 {
            let mut bytes = good.clone();
            for _ in 0..1 + random.below(8) {
                let at = random.below(bytes.len());
                bytes[at] = random.byte();
            }
            damaged.push(bytes);
        }
        for bytes in damaged {
            n += 1;
            let source = write(dir.path(), "damaged", &bytes);
            // Ok (a decoder may fill in what is missing) or a refusal, never a panic.
            match thumbs.thumbnail(&source, &key(n), Size::Small) {
                Ok(thumbnail) => {
                    assert_eq!(image::guess_format(&fs::read(thumbnail).unwrap()).unwrap(), ImageFormat::Jpeg)
                }
                Err(Error::Unsupported { .. } | Error::Corrupt { .. } | Error::TooLarge { .. }) => {}
                Err(e) => panic!("{format:?}: {e:?}"),
            }
        }
    }
}

#[test]
fn keys_that_are_not_hex_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    let source = write(dir.path(), "photo.png", &encode(&DynamicImage::ImageRgb8(gradient(10, 10)), ImageFormat::Png));
    for bad in ["../../../../etc/passwd", "../0123456789abcdef0123", "0123456789abcdef/..", "abc", "", &"a".repeat(129)]
    {
        assert!(matches!(thumbs.thumbnail(&source, bad, Size::Small), Err(Error::InvalidKey)), "{bad}");
    }
    assert!(!dir.path().join("cache").exists());
}

#[test]
fn other_files_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = Thumbnailer::new(dir.path().join("cache"), BUDGET);
    for (n, bytes) in [&b"BM\0\0\0\0\0\0\0\0\0\0\0\0"[..], b"II*\0\x08\0\0\0", b"<svg></svg>"].iter().enumerate() {
        let source = write(dir.path(), "photo.jpg", bytes);
        let refused = thumbs.thumbnail(&source, &key(n), Size::Small);
        assert!(matches!(refused, Err(Error::Unsupported { .. })), "{refused:?}");
    }
    assert!(matches!(thumbs.thumbnail(dir.path(), &key(2), Size::Small), Err(Error::Unsupported { .. })));
    assert!(placeholder_svg().starts_with("<svg") && placeholder_svg().ends_with("</svg>"));
}

#[test]
fn two_decodes_that_do_not_fit_together_take_turns() {
    fn shared<T: Send + Sync>(t: T) -> T {
        t
    }
    let dir = tempfile::tempdir().unwrap();
    let source =
        write(dir.path(), "photo.png", &encode(&DynamicImage::ImageRgb8(gradient(1000, 1000)), ImageFormat::Png));
    let Err(Error::TooLarge { needed, .. }) =
        Thumbnailer::new(dir.path().join("probe"), 1).thumbnail(&source, &key(0), Size::Small)
    else {
        panic!("a budget of one byte fits nothing");
    };
    let thumbs = shared(Thumbnailer::new(dir.path().join("cache"), needed + needed / 2));
    std::thread::scope(|s| {
        let a = s.spawn(|| thumbs.thumbnail(&source, &key(1), Size::Small));
        let b = s.spawn(|| thumbs.thumbnail(&source, &key(2), Size::Small));
        assert_eq!(jpeg_size(&a.join().unwrap().unwrap()), (256, 256));
        assert_eq!(jpeg_size(&b.join().unwrap().unwrap()), (256, 256));
    });
}

#[test]
fn prune_removes_the_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let thumbs = Thumbnailer::new(cache.clone(), BUDGET);
    assert_eq!(thumbs.prune(0).unwrap(), 0, "no cache yet");
    let source =
        write(dir.path(), "photo.png", &encode(&DynamicImage::ImageRgb8(gradient(300, 300)), ImageFormat::Png));
    let now = SystemTime::now();
    let made: Vec<(PathBuf, u64)> = (1..=3)
        .map(|n| {
            let path = thumbs.thumbnail(&source, &key(n), Size::Small).unwrap();
            // key(1) is the oldest.
            let age = Duration::from_secs(1000 * (4 - n as u64));
            File::options().write(true).open(&path).unwrap().set_modified(now - age).unwrap();
            let len = fs::metadata(&path).unwrap().len();
            (path, len)
        })
        .collect();
    let stale = made[0].0.with_file_name(".left-over.jpg.1-1.tmp");
    fs::write(&stale, b"half").unwrap();
    File::options().write(true).open(&stale).unwrap().set_modified(now - Duration::from_secs(7200)).unwrap();
    let keep = made[2].1 + 1;
    assert_eq!(thumbs.prune(keep).unwrap(), made[0].1 + made[1].1 + 4);
    assert!(!made[0].0.exists() && !made[1].0.exists() && !stale.exists());
    assert!(made[2].0.exists());
    assert_eq!(thumbs.prune(keep).unwrap(), 0);
}

// Helpers.

fn key(n: usize) -> String {
    format!("{n:02x}{}", "0123456789abcdef".repeat(4))[..64].to_string()
}

fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| Rgb([byte(x), byte(y), byte(x + y)]))
}

/// The low byte of `n`.
fn byte(n: u32) -> u8 {
    n.to_le_bytes()[0]
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    let image = if format == ImageFormat::Jpeg { DynamicImage::ImageRgb8(image.to_rgb8()) } else { image.clone() };
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// The dimensions of the JPEG at `path`, checking it is one.
fn jpeg_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Jpeg);
    let image = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
    (image.width(), image.height())
}

/// `jpeg` with an EXIF segment (APP1) right after the start of image, saying `orientation`.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    // TIFF header, big-endian, first IFD at offset 8.
    exif.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    // One entry: tag 0x0112 (Orientation), type 3 (SHORT), count 1, value; then no next IFD.
    exif.extend_from_slice(&1u16.to_be_bytes());
    exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(u16::try_from(exif.len()).unwrap() + 2).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A small deterministic random number generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap() % n
    }
}
