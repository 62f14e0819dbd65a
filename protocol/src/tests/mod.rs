//! Tests that need more than one module: the virtual-time [`util::Pair`] and the session
//! scenarios built on it.

mod session;
mod util;
