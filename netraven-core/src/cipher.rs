//! [`SecretCipher`]: encryption of credential secrets at rest.

use crate::error::Result;
use crate::secret::Secret;
use std::fmt::Debug;

/// Encrypts and decrypts secrets for storage. `aad` binds the ciphertext to its row (e.g.
/// `credential:42:password`), so a ciphertext copied to another row fails to decrypt.
/// Implementations return [`crate::ErrorKind::Crypto`] on a wrong key or tampered data — never an
/// empty secret.
pub trait SecretCipher: Send + Sync + Debug + 'static {
    /// Encrypts; the output is printable text (it is stored in a text column).
    fn encrypt(&self, plain: &Secret, aad: &[u8]) -> Result<String>;
    /// Decrypts output of [`SecretCipher::encrypt`] made with the same `aad`.
    fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Secret>;
    /// Id of the key new values are encrypted with (rotation re-encrypts values with other ids).
    fn current_key_id(&self) -> String;
}
