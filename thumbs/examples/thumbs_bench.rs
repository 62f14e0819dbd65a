//! Measures the thumbnail of a 12-megapixel JPEG photo (4000x3000, quality 90, smooth shapes
//! with noise so that it compresses like a photo): cold (median of 5, a fresh cache each time)
//! and cached, and the process's peak memory.
//!
//! Make the photo in one process, then measure in another so that making it does not count in
//! the peak memory:
//!
//! ```text
//! cargo build --release -p clearskies-thumbs --example thumbs_bench
//! target/release/examples/thumbs_bench generate /tmp/thumbs-bench
//! /usr/bin/time -v target/release/examples/thumbs_bench measure /tmp/thumbs-bench
//! ```
// A measuring tool: printing its results is its job.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use clearskies_thumbs::{Size, Thumbnailer};
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BUDGET: u64 = 300 << 20;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..) {
        Some([command, dir]) if command == "generate" => generate(Path::new(dir)),
        Some([command, dir]) if command == "measure" => measure(Path::new(dir)),
        _ => Err("usage: thumbs_bench generate|measure DIR".into()),
    }
}

fn generate(dir: &Path) -> Result<(), Box<dyn Error>> {
    fs::create_dir_all(dir)?;
    let mut seed: u32 = 1;
    let photo = RgbImage::from_fn(4000, 3000, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = seed % 24;
        let wave = |v: u32, period: u32| (v % period) * 160 / period;
        Rgb([wave(x + y, 700) + noise, wave(x * 2, 1100) + noise, wave(y * 3, 900) + noise]
            .map(|c| u8::try_from(c).unwrap_or(u8::MAX)))
    });
    let path = dir.join("photo.jpg");
    JpegEncoder::new_with_quality(BufWriter::new(File::create(&path)?), 90).encode_image(&photo)?;
    println!("{}: {} bytes", path.display(), fs::metadata(&path)?.len());
    Ok(())
}

fn measure(dir: &Path) -> Result<(), Box<dyn Error>> {
    let photo = dir.join("photo.jpg");
    let cache = dir.join("cache");
    for size in [Size::Small, Size::Large] {
        let mut cold = Vec::new();
        for _ in 0..5 {
            if cache.exists() {
                fs::remove_dir_all(&cache)?;
            }
            let thumbs = Thumbnailer::new(cache.clone(), BUDGET);
            let started = Instant::now();
            thumbs.thumbnail(&photo, KEY, size)?;
            cold.push(started.elapsed());
        }
        let thumbs = Thumbnailer::new(cache.clone(), BUDGET);
        let mut cached = Vec::new();
        for _ in 0..1000 {
            let started = Instant::now();
            thumbs.thumbnail(&photo, KEY, size)?;
            cached.push(started.elapsed());
        }
        let thumbnail = thumbs.thumbnail(&photo, KEY, size)?;
        println!(
            "{}: cold median {:?} (all {:?}); cached median {:?}, max {:?}; thumbnail {} bytes",
            size.name(),
            median(&mut cold),
            cold,
            median(&mut cached),
            cached.iter().max().copied().unwrap_or_default(),
            fs::metadata(thumbnail)?.len()
        );
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: unknown");
    println!("peak resident memory {}", peak.trim_start_matches("VmHWM:").trim());
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
