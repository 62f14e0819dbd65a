//! Integration tests: they run the real `clearskies` binary as a process.
//!
//! One module per area, in one test binary (ripgrep style).

mod cli;
mod daemon;
mod shares;
mod util;
