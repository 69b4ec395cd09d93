//! [`SecretCipher`]: encryption of credential secrets at rest.

use crate::error::Result;
use crate::secret::Secret;
use std::fmt::Debug;

/// Encrypts and decrypts secrets for storage. `aad` binds the ciphertext to its row (e.g.
/// `credential:42:password`), so a ciphertext copied to another row fails to decrypt.
/// Implementations return [`crate::ErrorKind::Crypto`] on a wrong key or tampered data — never an
/// empty secret.
///
/// A toy implementation (reversible, not secret: use the AES-GCM cipher of `netraven-store`),
/// showing the contract the conformance suite (`testkit::cipher`) checks:
///
/// ```
/// use netraven_core::cipher::SecretCipher;
/// use netraven_core::{Error, ErrorKind, Result, Secret};
///
/// #[derive(Debug)]
/// struct Rot13;
///
/// fn rot(s: &str) -> String {
///     s.chars().map(|c| match c {
///         'a'..='z' => (((c as u8 - b'a' + 13) % 26) + b'a') as char,
///         _ => c,
///     }).collect()
/// }
///
/// impl SecretCipher for Rot13 {
///     fn encrypt(&self, plain: &Secret, aad: &[u8]) -> Result<String> {
///         Ok(format!("{}|{}", String::from_utf8_lossy(aad), rot(plain.expose())))
///     }
///     fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Secret> {
///         match stored.split_once('|') {
///             Some((a, v)) if a.as_bytes() == aad => Ok(Secret::new(rot(v))),
///             _ => Err(Error::new(ErrorKind::Crypto, "moved or tampered value")),
///         }
///     }
///     fn current_key_id(&self) -> String {
///         "rot13".into()
///     }
/// }
///
/// let c = Rot13;
/// let stored = c.encrypt(&Secret::new("hunter"), b"credential:1:password")?;
/// assert_eq!(c.decrypt(&stored, b"credential:1:password")?.expose(), "hunter");
/// assert!(c.decrypt(&stored, b"credential:2:password").is_err());
/// # Ok::<(), Error>(())
/// ```
pub trait SecretCipher: Send + Sync + Debug + 'static {
    /// Encrypts; the output is printable text (it is stored in a text column).
    fn encrypt(&self, plain: &Secret, aad: &[u8]) -> Result<String>;
    /// Decrypts output of [`SecretCipher::encrypt`] made with the same `aad`.
    fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Secret>;
    /// Id of the key new values are encrypted with (rotation re-encrypts values with other ids).
    fn current_key_id(&self) -> String;
}
