//! AES-256-GCM cipher: round trip, tamper, wrong key, moved value, keyring, key files.

use netraven_core::ErrorKind;
use netraven_core::cipher::SecretCipher;
use netraven_core::secret::Secret;
use netraven_store::cipher::{AesGcmCipher, KeyMaterial, load_key_file, load_or_create_key_file};

#[test]
fn round_trip_and_format() {
    let c = AesGcmCipher::new("k1", &KeyMaterial::generate()).unwrap();
    let s = Secret::new("hunter2");
    let enc = c.encrypt(&s, b"credential:1:password").unwrap();
    assert!(enc.starts_with("v1:k1:"), "{enc}");
    assert!(!enc.contains("hunter2"));
    assert_eq!(c.decrypt(&enc, b"credential:1:password").unwrap(), s);
    // Fresh nonce per value.
    let enc2 = c.encrypt(&s, b"credential:1:password").unwrap();
    assert_ne!(enc, enc2);
    // Empty secrets round-trip too (and are not confused with failure).
    let e = c.encrypt(&Secret::new(""), b"x").unwrap();
    assert_eq!(c.decrypt(&e, b"x").unwrap().expose(), "");
}

#[test]
fn tamper_wrong_key_and_moved_value_fail_with_crypto() {
    let c = AesGcmCipher::new("k1", &KeyMaterial::generate()).unwrap();
    let enc = c
        .encrypt(&Secret::new("pw"), b"credential:1:password")
        .unwrap();
    // Moved to another row.
    let err = c.decrypt(&enc, b"credential:2:password").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crypto);
    // Tampered body.
    let mut bytes = enc.clone().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        c.decrypt(&tampered, b"credential:1:password")
            .unwrap_err()
            .kind(),
        ErrorKind::Crypto
    );
    // Wrong key under the same id.
    let other = AesGcmCipher::new("k1", &KeyMaterial::generate()).unwrap();
    assert_eq!(
        other
            .decrypt(&enc, b"credential:1:password")
            .unwrap_err()
            .kind(),
        ErrorKind::Crypto
    );
    // Unknown key id.
    let other = AesGcmCipher::new("k2", &KeyMaterial::generate()).unwrap();
    let err = other.decrypt(&enc, b"credential:1:password").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crypto);
    assert!(err.message().contains("k1"));
    // Garbage.
    for g in ["", "plain", "v1:k1:", "v1:k1:!!!", "v2:k1:AAAA"] {
        assert_eq!(
            c.decrypt(g, b"a").unwrap_err().kind(),
            ErrorKind::Crypto,
            "{g}"
        );
    }
}

#[test]
fn keyring_decrypts_old_and_encrypts_with_current() {
    let old_key = KeyMaterial::generate();
    let new_key = KeyMaterial::generate();
    let old = AesGcmCipher::from_key(&old_key);
    let enc_old = old.encrypt(&Secret::new("a"), b"r").unwrap();
    let ring = AesGcmCipher::from_key(&new_key)
        .with_old_key(&old_key)
        .unwrap();
    assert_eq!(ring.current_key_id(), new_key.derived_id());
    assert_eq!(ring.decrypt(&enc_old, b"r").unwrap().expose(), "a");
    let enc_new = ring.encrypt(&Secret::new("b"), b"r").unwrap();
    assert_eq!(
        AesGcmCipher::key_id_of(&enc_new),
        Some(new_key.derived_id().as_str())
    );
    assert!(old.decrypt(&enc_new, b"r").is_err());
}

#[test]
fn key_from_base64_and_debug_redacts() {
    let k = KeyMaterial::generate();
    let b64 = k.to_base64();
    let c = AesGcmCipher::from_base64(&format!("  {b64}\n")).unwrap();
    assert_eq!(c.current_key_id(), k.derived_id());
    assert!(!format!("{k:?}").contains(&b64));
    assert!(!format!("{c:?}").contains(&b64));
    assert_eq!(
        AesGcmCipher::from_base64("c2hvcnQ=").unwrap_err().kind(),
        ErrorKind::Crypto
    );
    assert_eq!(
        AesGcmCipher::from_base64("not base64!").unwrap_err().kind(),
        ErrorKind::Crypto
    );
}

#[test]
fn key_file_is_created_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("secret.key");
    let k1 = load_or_create_key_file(&path).unwrap();
    let k2 = load_or_create_key_file(&path).unwrap();
    assert_eq!(k1, k2);
    assert_eq!(load_key_file(&path).unwrap(), k1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A damaged key file is an error, never silently replaced.
    std::fs::write(&path, "garbage").unwrap();
    assert_eq!(
        load_or_create_key_file(&path).unwrap_err().kind(),
        ErrorKind::Crypto
    );
    // A missing key file (when one is required) is an error.
    assert_eq!(
        load_key_file(&dir.path().join("nope")).unwrap_err().kind(),
        ErrorKind::Crypto
    );
}

#[test]
fn aes_gcm_passes_the_cipher_conformance_suite() {
    use netraven_core::testkit::cipher::{CipherFixture, run_all};
    use std::sync::Arc;
    let old = KeyMaterial::generate();
    let new = KeyMaterial::generate();
    run_all(&CipherFixture {
        cipher: Arc::new(AesGcmCipher::from_key(&old)),
        other_key: Arc::new(AesGcmCipher::from_key(&KeyMaterial::generate())),
        rotated: Arc::new(AesGcmCipher::from_key(&new).with_old_key(&old).unwrap()),
    });
}
