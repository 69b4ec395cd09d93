//! The credential key's life through the library: loading the cipher from key files and
//! rotating the key file with a store's re-encryption, including an interrupted rotation.

use netraven_core::ErrorKind;
use netraven_core::model::Credential;
use netraven_core::secret::Secret;
use netraven_core::store::CredentialStore;
use netraven_store::cipher::load_key_file;
use netraven_store::keys::{load_cipher, rotate_key_file};
use netraven_store::sql::SqliteStore;
use std::sync::Arc;

#[tokio::test]
async fn rotation_reencrypts_moves_the_key_files_and_survives_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("secret.key");
    let db = dir.path().join("nr.db");
    let store = SqliteStore::open(&db, Arc::new(load_cipher(None, &key_file).unwrap()))
        .await
        .unwrap();
    let c1 = store
        .create_credential(&Credential::new("c1", "u", Secret::new("pw1")))
        .await
        .unwrap();
    let old_id = load_key_file(&key_file).unwrap().derived_id();

    // An interrupted rotation: the new key was written, re-encryption failed.
    let err = rotate_key_file(&key_file, async |_| {
        Err(netraven_core::Error::unavailable("database went away"))
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let next = key_file.with_extension("key.next");
    assert!(
        next.exists(),
        "the new key is on disk before any row uses it"
    );
    let next_id = load_key_file(&next).unwrap().derived_id();
    // Startup in between still reads everything.
    let cipher = load_cipher(None, &key_file).unwrap();
    assert_eq!(cipher.key_ids().len(), 2);

    // Running it again finishes with the same new key.
    let r = rotate_key_file(&key_file, async |c| store.reencrypt_credentials(c).await)
        .await
        .unwrap();
    assert_eq!(r.reencrypted, 1);
    assert_eq!(r.key_id, next_id);
    assert!(!next.exists());
    assert_eq!(load_key_file(&key_file).unwrap().derived_id(), next_id);
    assert_eq!(load_key_file(&r.previous).unwrap().derived_id(), old_id);
    drop(store);

    // Only the new key is needed now: reopen with the new key file and nothing else.
    std::fs::remove_file(&r.previous).unwrap();
    let store = SqliteStore::open(&db, Arc::new(load_cipher(None, &key_file).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        store.get_credential(c1.id).await.unwrap().password.expose(),
        "pw1"
    );
}

#[test]
fn a_configured_key_wins_and_a_damaged_key_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("secret.key");
    let configured = netraven_store::cipher::KeyMaterial::generate();
    let c = load_cipher(Some(&configured.to_base64()), &key_file).unwrap();
    assert_eq!(c.key_ids(), vec![configured.derived_id()]);
    assert!(!key_file.exists(), "a configured key creates no key file");
    std::fs::write(&key_file, "not a key\n").unwrap();
    assert_eq!(
        load_cipher(None, &key_file).unwrap_err().kind(),
        ErrorKind::Crypto
    );
}
