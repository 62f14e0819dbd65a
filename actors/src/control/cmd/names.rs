//! The names answers carry as strings (a share's `status` and `mode`, a code's `state`, a
//! peer's `state` and `source`) as enums: [`wire_names!`] makes each one with its wire
//! spelling written once, for serde, [`as_str`](Mode::as_str) and `Display` alike.
//!
//! Every such enum has an `Unknown` variant, spelled `unknown`, that reads any name this
//! version does not know: a client reading a newer daemon's answer gets `Unknown` rather
//! than an error. The daemon sends `unknown` only where it always did (a share's `mode`).

use clearskies_protocol::message::core::AccessLevel;

/// An enum of names sent as strings: `$Variant = "wire name"`, plus `Unknown` (`unknown`,
/// and whatever else is read). Gives `ALL` (the known variants), `as_str`, `from_name` (as
/// serde reads a name) and `Display`.
macro_rules! wire_names {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[doc = $doc])* #[serde(rename = $wire)] $variant,)*
            /// A name this version does not know (from a newer daemon).
            #[serde(rename = "unknown", other)]
            Unknown,
        }

        impl $name {
            /// Every variant but `Unknown`.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name as the wire spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Unknown => "unknown",
                }
            }

            /// The variant `name` spells (`Unknown` for any other name, as serde reads it).
            pub fn from_name(name: &str) -> $name {
                match name {
                    $($wire => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_names;

wire_names! {
    /// An access level as answers name it (a share's `mode`, the level a code grants):
    /// `unknown` is a share whose level this version does not know, or whose actor is
    /// restarting.
    pub enum Mode {
        /// May change and delete data.
        ReadWrite = "read_write",
        /// May read all data, not change it.
        ReadOnly = "read_only",
        /// Holds only ciphertext.
        Untrusted = "untrusted",
    }
}

impl From<AccessLevel> for Mode {
    fn from(level: AccessLevel) -> Mode {
        match level {
            AccessLevel::ReadWrite => Mode::ReadWrite,
            AccessLevel::ReadOnly => Mode::ReadOnly,
            AccessLevel::Untrusted => Mode::Untrusted,
            AccessLevel::Unknown => Mode::Unknown,
        }
    }
}
