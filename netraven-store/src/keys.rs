//! The credential key's life: where the key comes from ([`load_cipher`]) and how it is rotated
//! ([`rotate_key_file`]).
//!
//! Key files sit side by side: `<key>` (current), `<key>.next` (written by a rotation before any
//! row uses it) and `<key>.prev` (the key a finished rotation replaced). [`load_cipher`] encrypts
//! with the current key and decrypts with all three, so a rotation interrupted at any point loses
//! nothing and can be run again.

use crate::cipher::{
    AesGcmCipher, KeyMaterial, load_key_file, load_or_create_key_file, write_new_key_file,
};
use netraven_core::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

fn sibling(key_file: &Path, ext: &str) -> PathBuf {
    key_file.with_extension(ext)
}

/// The cipher for credential secrets: the `configured` key (base64) if given, else the key file
/// (created with mode 0600 on first use), plus any `.next`/`.prev` key files for decryption.
pub fn load_cipher(configured: Option<&str>, key_file: &Path) -> Result<AesGcmCipher> {
    let key = match configured {
        Some(b64) => KeyMaterial::from_base64(b64)?,
        None => load_or_create_key_file(key_file)?,
    };
    let mut cipher = AesGcmCipher::from_key(&key);
    // Keys of an interrupted or earlier rotation still decrypt (never encrypt).
    for ext in ["key.next", "key.prev"] {
        let path = sibling(key_file, ext);
        if path.exists() {
            cipher = cipher.with_old_key(&load_key_file(&path)?)?;
        }
    }
    Ok(cipher)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Credentials re-encrypted.
    pub reencrypted: u64,
    /// Id of the new key.
    pub key_id: String,
    /// Where the replaced key is kept.
    pub previous: PathBuf,
}

/// Rotates the key in `key_file`: writes a new key to `<key>.next` (before any row uses it),
/// calls `reencrypt` with a cipher that encrypts with the new key and decrypts with both (e.g.
/// `|c| store.reencrypt_credentials(c)`), then moves the old key to `<key>.prev` and the new one
/// into place. A `.next` left by an interrupted rotation is reused, so running it again finishes
/// the job.
pub async fn rotate_key_file<F>(key_file: &Path, reencrypt: F) -> Result<Rotation>
where
    F: AsyncFnOnce(&AesGcmCipher) -> Result<u64>,
{
    let old_key = load_key_file(key_file)?;
    let next_path = sibling(key_file, "key.next");
    let new_key = if next_path.exists() {
        load_key_file(&next_path)?
    } else {
        let k = KeyMaterial::generate();
        write_new_key_file(&next_path, &k)?;
        k
    };
    let new_cipher = AesGcmCipher::from_key(&new_key).with_old_key(&old_key)?;
    let reencrypted = reencrypt(&new_cipher).await?;
    let prev = sibling(key_file, "key.prev");
    let io = |e: std::io::Error| {
        Error::new(ErrorKind::Unavailable, format!("key file rotation: {e}")).with_source(e)
    };
    std::fs::rename(key_file, &prev).map_err(io)?;
    std::fs::rename(&next_path, key_file).map_err(io)?;
    tracing::info!(reencrypted, key_id = %new_key.derived_id(), "rotated the credential key");
    Ok(Rotation {
        reencrypted,
        key_id: new_key.derived_id(),
        previous: prev,
    })
}
