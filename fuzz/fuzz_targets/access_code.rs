//! Access-code parsing never panics, and every accepted code formats back to itself.
#![no_main]

use clearskies_protocol::access_code::AccessCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(code) = s.parse::<AccessCode>() {
        let text = code.to_string();
        assert_eq!(text.parse::<AccessCode>().as_ref(), Ok(&code));
        assert!(s.to_ascii_uppercase().contains(&text));
    }
});
