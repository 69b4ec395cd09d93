//! The [`SecretCipher`] conformance suite: round trip, no plaintext in the output, tampered
//! text, a wrong key, a value moved to another row, garbage, and rotation.

use crate::cipher::SecretCipher;
use crate::error::ErrorKind;
use crate::secret::Secret;
use std::sync::Arc;

/// The ciphers the suite needs.
#[derive(Debug, Clone)]
pub struct CipherFixture {
    /// The cipher under test.
    pub cipher: Arc<dyn SecretCipher>,
    /// The same implementation with another key (must not decrypt `cipher`'s values).
    pub other_key: Arc<dyn SecretCipher>,
    /// `cipher` after a key rotation: encrypts with a new key, still decrypts `cipher`'s values.
    pub rotated: Arc<dyn SecretCipher>,
}

fn expect_crypto(c: &dyn SecretCipher, stored: &str, aad: &[u8], what: &str) {
    match c.decrypt(stored, aad) {
        Ok(_) => panic!("{what}: decrypted (it must fail with Crypto, never return a secret)"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Crypto, "{what}: {e}"),
    }
}

/// Replaces the character at `i` with another printable one.
fn flip(s: &str, i: usize) -> String {
    s.char_indices()
        .map(|(j, c)| {
            if j == i {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect()
}

/// Runs every check; panics naming the first broken behaviour.
pub fn run_all(f: &CipherFixture) {
    let aad = b"credential:1:password".as_slice();
    let plain = Secret::new("hunter2-correct-horse");
    let enc = f.cipher.encrypt(&plain, aad).expect("encrypt");
    assert!(
        !enc.contains("hunter2"),
        "the output contains the plaintext"
    );
    assert!(
        enc.chars().all(|c| c.is_ascii_graphic()),
        "the output must be printable text: {enc:?}"
    );
    assert_eq!(f.cipher.decrypt(&enc, aad).expect("decrypt"), plain);
    assert_ne!(
        f.cipher.encrypt(&plain, aad).expect("encrypt"),
        enc,
        "encrypting twice must not give the same text (fresh nonce)"
    );
    let empty = f
        .cipher
        .encrypt(&Secret::new(""), aad)
        .expect("encrypt empty");
    assert_eq!(
        f.cipher
            .decrypt(&empty, aad)
            .expect("decrypt empty")
            .expose(),
        ""
    );

    // Tampered text: the middle and near the end.
    for i in [enc.len() / 2, enc.len().saturating_sub(3)] {
        expect_crypto(f.cipher.as_ref(), &flip(&enc, i), aad, "tampered text");
    }
    // Moved to another row.
    expect_crypto(
        f.cipher.as_ref(),
        &enc,
        b"credential:2:password",
        "value moved to another row",
    );
    expect_crypto(
        f.cipher.as_ref(),
        &enc,
        b"credential:1:enable_secret",
        "value moved to another column",
    );
    // Wrong key.
    expect_crypto(f.other_key.as_ref(), &enc, aad, "wrong key");
    // Garbage.
    for g in ["", "plain", ":", "v1::"] {
        expect_crypto(f.cipher.as_ref(), g, aad, &format!("garbage {g:?}"));
    }

    // Rotation: a new current key, old values still readable, new values unreadable by the old.
    assert_ne!(
        f.rotated.current_key_id(),
        f.cipher.current_key_id(),
        "rotation must change the current key id"
    );
    assert_eq!(
        f.rotated
            .decrypt(&enc, aad)
            .expect("rotated cipher reads old values"),
        plain
    );
    let re = f
        .rotated
        .encrypt(&plain, aad)
        .expect("encrypt after rotation");
    assert_eq!(f.rotated.decrypt(&re, aad).expect("decrypt"), plain);
    expect_crypto(
        f.cipher.as_ref(),
        &re,
        aad,
        "the old key reading a value of the new key",
    );
    expect_crypto(
        f.rotated.as_ref(),
        &re,
        b"credential:2:password",
        "rotated value moved to another row",
    );
}
