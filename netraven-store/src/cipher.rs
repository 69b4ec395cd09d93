//! AES-256-GCM encryption of credential secrets at rest.
//!
//! [`AesGcmCipher`] implements [`SecretCipher`]: every value gets a fresh random 96-bit nonce, the
//! caller's associated data (the row identity, e.g. `credential:42:password`) is authenticated, and
//! the stored text is `v1:<key_id>:<base64(nonce || ciphertext)>`. The cipher is a keyring: the
//! current key encrypts, any key it knows decrypts, so keys can be rotated (add the new key as
//! current, keep the old one, re-encrypt with
//! [`crate::sql::SqliteStore::reencrypt_credentials`] /
//! [`crate::sql::PostgresStore::reencrypt_credentials`], then drop the old key).
//!
//! Keys come from configuration ([`AesGcmCipher::from_base64`]) or from a key file generated once
//! with mode 0600 ([`load_or_create_key_file`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use netraven_core::cipher::SecretCipher;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::secret::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const FORMAT_VERSION: &str = "v1";

fn crypto(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Crypto, msg)
}

/// A 256-bit key. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial([u8; KEY_LEN]);

impl KeyMaterial {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        KeyMaterial(k)
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            crypto(format!(
                "an encryption key must be {KEY_LEN} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(KeyMaterial(arr))
    }

    /// A key from standard base64 of 32 bytes (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| crypto("the encryption key is not valid base64"))?;
        Self::from_bytes(&bytes)
    }

    /// The key as standard base64 (for writing a key file or a config value).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// A short, stable, non-secret id derived from the key: the first 8 hex digits of
    /// SHA-256("netraven-key-id" || key).
    pub fn derived_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"netraven-key-id");
        h.update(self.0);
        hex::encode(&h.finalize()[..4])
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial([REDACTED])")
    }
}

/// AES-256-GCM [`SecretCipher`] with a keyring for rotation.
#[derive(Clone)]
pub struct AesGcmCipher {
    current: String,
    keys: BTreeMap<String, Aes256Gcm>,
}

impl fmt::Debug for AesGcmCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesGcmCipher")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_key_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(crypto(
            "a key id must be 1 to 64 characters of [A-Za-z0-9._-]",
        ));
    }
    Ok(())
}

impl AesGcmCipher {
    /// A cipher with a single key under the given id.
    pub fn new(key_id: impl Into<String>, key: &KeyMaterial) -> Result<Self> {
        let key_id = key_id.into();
        valid_key_id(&key_id)?;
        let mut keys = BTreeMap::new();
        keys.insert(
            key_id.clone(),
            Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        );
        Ok(AesGcmCipher {
            current: key_id,
            keys,
        })
    }

    /// A cipher with a single key whose id is derived from the key itself
    /// ([`KeyMaterial::derived_id`]).
    pub fn from_key(key: &KeyMaterial) -> Self {
        let id = key.derived_id();
        let mut keys = BTreeMap::new();
        keys.insert(
            id.clone(),
            Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        );
        AesGcmCipher { current: id, keys }
    }

    /// A cipher from a base64 key (as found in configuration); the key id is derived from it.
    pub fn from_base64(text: &str) -> Result<Self> {
        Ok(Self::from_key(&KeyMaterial::from_base64(text)?))
    }

    /// Adds a key that can decrypt (but does not encrypt). Builder-style.
    pub fn with_decrypt_key(
        mut self,
        key_id: impl Into<String>,
        key: &KeyMaterial,
    ) -> Result<Self> {
        let key_id = key_id.into();
        valid_key_id(&key_id)?;
        if key_id == self.current {
            return Err(crypto("key id is already the current key"));
        }
        self.keys
            .insert(key_id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)));
        Ok(self)
    }

    /// Adds a key that can decrypt, with its id derived from the key. Builder-style.
    pub fn with_old_key(self, key: &KeyMaterial) -> Result<Self> {
        let id = key.derived_id();
        if id == self.current {
            return Ok(self);
        }
        self.with_decrypt_key(id, key)
    }

    /// Ids of every key in the ring.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// The key id a stored value was encrypted with, if it has the expected format.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        let mut parts = stored.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(FORMAT_VERSION), Some(id), Some(_)) => Some(id),
            _ => None,
        }
    }
}

impl SecretCipher for AesGcmCipher {
    fn encrypt(&self, plain: &Secret, aad: &[u8]) -> Result<String> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or_else(|| crypto("the current key is missing from the keyring"))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.expose().as_bytes(),
                    aad,
                },
            )
            .map_err(|_| crypto("encryption failed"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{FORMAT_VERSION}:{}:{}",
            self.current,
            B64.encode(blob)
        ))
    }

    fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Secret> {
        let mut parts = stored.splitn(3, ':');
        let (version, key_id, body) = match (parts.next(), parts.next(), parts.next()) {
            (Some(v), Some(k), Some(b)) => (v, k, b),
            _ => return Err(crypto("stored secret is not in the v1:<key>:<data> format")),
        };
        if version != FORMAT_VERSION {
            return Err(crypto(format!(
                "stored secret has unsupported format version {version:?}"
            )));
        }
        let cipher = self.keys.get(key_id).ok_or_else(|| {
            crypto(format!(
                "stored secret was encrypted with key {key_id:?}, which is not configured \
                 (wrong or missing encryption key)"
            ))
        })?;
        let blob = B64
            .decode(body)
            .map_err(|_| crypto("stored secret is not valid base64"))?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(crypto("stored secret is truncated"));
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| {
                crypto(format!(
                    "stored secret failed authentication with key {key_id:?} \
                     (wrong key, tampered data or value moved from another row)"
                ))
            })?;
        let text =
            String::from_utf8(plain).map_err(|_| crypto("decrypted secret is not valid UTF-8"))?;
        Ok(Secret::new(text))
    }

    fn current_key_id(&self) -> String {
        self.current.clone()
    }
}

/// Reads the base64 key in `path`, or — if the file does not exist — generates a key, writes it
/// there with mode 0600 (creating parent directories) and returns it. An existing file that does
/// not hold a valid key is an error (it is never overwritten).
pub fn load_or_create_key_file(path: &Path) -> Result<KeyMaterial> {
    match std::fs::read_to_string(path) {
        Ok(text) => KeyMaterial::from_base64(&text)
            .map_err(|e| e.context(format!("key file {}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| crypto(format!("cannot create {}: {e}", dir.display())))?;
            }
            let key = KeyMaterial::generate();
            write_new_key_file(path, &key)?;
            tracing::info!(path = %path.display(), key_id = %key.derived_id(), "generated a new encryption key file");
            Ok(key)
        }
        Err(e) => Err(crypto(format!(
            "cannot read key file {}: {e}",
            path.display()
        ))),
    }
}

/// Reads the base64 key in `path`; a missing or invalid file is a [`ErrorKind::Crypto`] error.
pub fn load_key_file(path: &Path) -> Result<KeyMaterial> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crypto(format!("cannot read key file {}: {e}", path.display())))?;
    KeyMaterial::from_base64(&text).map_err(|e| e.context(format!("key file {}", path.display())))
}

/// Writes a key to a new file with mode 0600; fails if the file exists.
pub fn write_new_key_file(path: &Path, key: &KeyMaterial) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| crypto(format!("cannot create key file {}: {e}", path.display())))?;
    f.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| crypto(format!("cannot write key file {}: {e}", path.display())))?;
    Ok(())
}
