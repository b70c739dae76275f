//! Random bearer values (session cookies, codes, access tokens, CSRF tokens) and how they are
//! stored: only their SHA-256 reaches the database, so a database leak yields no usable value.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::Digest;

/// 256 random bits, base64url.
pub fn new_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// The stored form of a bearer value.
pub fn token_hash(value: &str) -> String {
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// Compare two secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
