//! The protocol's identity: its name, version and codec, as the handshake banner carries them.
//! Peers must agree on the banner byte for byte; it is bound into both handshake proofs, so a
//! downgrade cannot be spliced in. Implementations in other languages start here.

use crate::codec;

/// The protocol's name, which every version's banner starts with (`monogusa/`).
pub const NAME: &str = "monogusa/";

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// The banner each side sends in the handshake: protocol name and version, then the codec.
/// (A constant, so a handshake allocates nothing for it; a test checks it against its parts.)
pub const BANNER: &str = "monogusa/1 bincode2-fixint-le";

// The banner must end with the codec's name: changing the codec is a protocol change peers see.
const _: () = assert!(
    ends_with(BANNER.as_bytes(), codec::NAME.as_bytes()),
    "the banner must name the codec"
);

const fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > text.len() {
        return false;
    }
    let mut i = 0;
    while i < suffix.len() {
        if text[text.len() - suffix.len() + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The banner, as a `String` (see [`BANNER`]).
pub fn banner() -> String {
    BANNER.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_names_version_and_codec() {
        assert_eq!(BANNER, format!("{NAME}{VERSION} {}", codec::NAME));
    }
}
