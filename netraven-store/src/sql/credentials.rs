//! Credentials: secrets sealed with the store's cipher, the row identity as associated data.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where, or_now};
use crate::sql::tags::{Tagged, load_tags, set_tags};
use chrono::{DateTime, Utc};
use netraven_core::cipher::SecretCipher;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Credential, CredentialId, Page, Paged};
use netraven_core::secret::Secret;
use netraven_core::store::{CredentialStore, check};

const CRED_COLS: &str = "id, name, username, password_enc, enable_secret_enc, priority, \
    description, success_count, failure_count, last_used, created_at";

fn password_aad(id: i64) -> String {
    format!("credential:{id}:password")
}

fn enable_aad(id: i64) -> String {
    format!("credential:{id}:enable_secret")
}

/// Ciphertexts of a credential's secrets for row `id`.
fn encrypt_secrets(
    cipher: &dyn SecretCipher,
    id: i64,
    password: &Secret,
    enable: Option<&Secret>,
) -> Result<(String, Option<String>)> {
    let p = cipher.encrypt(password, password_aad(id).as_bytes())?;
    let e = enable
        .map(|s| cipher.encrypt(s, enable_aad(id).as_bytes()))
        .transpose()?;
    Ok((p, e))
}

/// Stores a credential's ciphertexts.
fn update_secrets(id: i64, password_enc: String, enable_enc: Option<String>) -> Sql {
    Sql::new("UPDATE credentials SET password_enc = $2, enable_secret_enc = $3 WHERE id = $1")
        .bind(id)
        .bind(password_enc)
        .bind(enable_enc)
}

impl<D: Dialect> SqlStore<D> {
    fn credential_row(&self, r: &D::Row) -> Result<Credential> {
        let id = r.i64("id")?;
        let password_enc = r.text("password_enc")?;
        let enable_enc = r.opt_text("enable_secret_enc")?;
        let secrets = self
            .cipher
            .decrypt(&password_enc, password_aad(id).as_bytes())
            .map_err(|e| e.context(format!("credential {id} password")))
            .and_then(|password| {
                let enable = enable_enc
                    .map(|c| {
                        self.cipher
                            .decrypt(&c, enable_aad(id).as_bytes())
                            .map_err(|e| e.context(format!("credential {id} enable secret")))
                    })
                    .transpose()?;
                Ok((password, enable))
            });
        // One row the key cannot open must not fail every listing and every device: it is
        // returned without secrets, flagged, and left out of connections.
        let (password, enable_secret, unreadable) = match secrets {
            Ok((p, e)) => (p, e, false),
            Err(e) if e.kind() == ErrorKind::Crypto => {
                self.note_unreadable(id, &e);
                (Secret::default(), None, true)
            }
            Err(e) => return Err(e),
        };
        Ok(Credential {
            id,
            name: r.text("name")?,
            username: r.text("username")?,
            password,
            enable_secret,
            priority: r.int("priority")?,
            tags: Vec::new(),
            description: r.opt_text("description")?,
            success_count: r.int("success_count")?,
            failure_count: r.int("failure_count")?,
            last_used: r.opt_ts("last_used")?,
            created_at: r.ts("created_at")?,
            unreadable,
        })
    }

    /// Logs an undecryptable credential once per store handle (it is read on every run).
    fn note_unreadable(&self, id: CredentialId, e: &Error) {
        let first = self
            .unreadable_seen
            .lock()
            .map(|mut seen| seen.insert(id))
            .unwrap_or(true);
        if first {
            tracing::error!(
                credential = id,
                key_id = %self.cipher.current_key_id(),
                error = %e,
                "credential cannot be decrypted with the configured key; it is skipped until an \
                 admin sets its secrets again"
            );
        }
    }

    async fn credentials_with_tags(&self, rows: Vec<D::Row>) -> Result<Vec<Credential>> {
        let mut creds = rows
            .iter()
            .map(|r| self.credential_row(r))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = creds.iter().map(|c| c.id).collect();
        let mut tags = load_tags(&self.db, Tagged::Credential, &ids).await?;
        for c in &mut creds {
            c.tags = tags.remove(&c.id).unwrap_or_default();
        }
        Ok(creds)
    }

    /// Re-encrypts every credential secret (and every jump host's password) with `new_cipher`
    /// (key rotation), in one
    /// transaction. Values are decrypted with the store's cipher, or with `new_cipher` when they
    /// were already rotated (so an interrupted rotation can be run again). Returns the number of
    /// credentials rewritten. Afterwards, reopen the store with `new_cipher` (or a keyring whose
    /// current key is the new one).
    pub async fn reencrypt_credentials(&self, new_cipher: &dyn SecretCipher) -> Result<u64> {
        let mut tx = self.db.begin_write().await?;
        let rows = D::tx_fetch_all(
            &mut tx,
            Sql::new("SELECT id, password_enc, enable_secret_enc FROM credentials ORDER BY id"),
        )
        .await?;
        let mut n = 0u64;
        for r in &rows {
            let id = r.i64("id")?;
            let open = |stored: &str, aad: &str| -> Result<Secret> {
                self.cipher
                    .decrypt(stored, aad.as_bytes())
                    .or_else(|first| {
                        new_cipher
                            .decrypt(stored, aad.as_bytes())
                            .map_err(|_| first)
                    })
                    .map_err(|e| e.context(format!("credential {id}")))
            };
            let password = open(&r.text("password_enc")?, &password_aad(id))?;
            let enable = r
                .opt_text("enable_secret_enc")?
                .map(|c| open(&c, &enable_aad(id)))
                .transpose()?;
            let (p, e) = encrypt_secrets(new_cipher, id, &password, enable.as_ref())?;
            D::tx_execute(&mut tx, update_secrets(id, p, e)).await?;
            n += 1;
        }
        // Jump hosts' passwords are sealed with the same key: rotated with it.
        let rows = D::tx_fetch_all(
            &mut tx,
            Sql::new("SELECT id, password_enc FROM jump_hosts ORDER BY id"),
        )
        .await?;
        for r in &rows {
            let id = r.i64("id")?;
            let aad = crate::sql::jump_hosts::jump_password_aad(id);
            let stored = r.text("password_enc")?;
            let password = self
                .cipher
                .decrypt(&stored, aad.as_bytes())
                .or_else(|first| {
                    new_cipher
                        .decrypt(&stored, aad.as_bytes())
                        .map_err(|_| first)
                })
                .map_err(|e| e.context(format!("jump host {id}")))?;
            let sealed = new_cipher.encrypt(&password, aad.as_bytes())?;
            D::tx_execute(
                &mut tx,
                Sql::new("UPDATE jump_hosts SET password_enc = $2 WHERE id = $1")
                    .bind(id)
                    .bind(sealed),
            )
            .await?;
        }
        D::commit(tx).await?;
        tracing::info!(credentials = n, key_id = %new_cipher.current_key_id(), "re-encrypted credentials");
        Ok(n)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> CredentialStore for SqlStore<D> {
    async fn create_credential(&self, cred: &Credential) -> Result<Credential> {
        check::credential(cred)?;
        let created = or_now(cred.created_at, Utc::now());
        let mut tx = self.db.begin_write().await?;
        // The row id is the ciphertexts' associated data, so they are written once it exists.
        let row = D::tx_fetch_one(
            &mut tx,
            Sql::new(
                "INSERT INTO credentials (name, username, password_enc, priority, description, \
                 created_at) VALUES ($1, $2, '', $3, $4, $5) RETURNING id",
            )
            .bind(&cred.name)
            .bind(&cred.username)
            .bind(i64::from(cred.priority))
            .bind(&cred.description)
            .bind(created),
            "inserted credential".into(),
        )
        .await?;
        let id = row.i64("id")?;
        let (p, e) = encrypt_secrets(
            self.cipher.as_ref(),
            id,
            &cred.password,
            cred.enable_secret.as_ref(),
        )?;
        D::tx_execute(&mut tx, update_secrets(id, p, e)).await?;
        set_tags::<D>(&mut tx, Tagged::Credential, id, &cred.tags).await?;
        D::commit(tx).await?;
        self.get_credential(id).await
    }

    async fn get_credential(&self, id: CredentialId) -> Result<Credential> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1")).bind(id),
                format!("credential {id}"),
            )
            .await?;
        self.credentials_with_tags(vec![row])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("credential {id}")))
    }

    async fn update_credential(&self, cred: &Credential) -> Result<Credential> {
        check::credential(cred)?;
        // An unreadable credential keeps its stored (perhaps recoverable) ciphertexts: its
        // empty placeholders are never encrypted over them.
        let secrets = if cred.unreadable {
            None
        } else {
            Some(encrypt_secrets(
                self.cipher.as_ref(),
                cred.id,
                &cred.password,
                cred.enable_secret.as_ref(),
            )?)
        };
        let set_secrets = if secrets.is_some() {
            ", password_enc = $6, enable_secret_enc = $7"
        } else {
            ""
        };
        let mut sql = Sql::new(format!(
            "UPDATE credentials SET name = $2, username = $3, priority = $4, \
             description = $5{set_secrets} WHERE id = $1"
        ))
        .bind(cred.id)
        .bind(&cred.name)
        .bind(&cred.username)
        .bind(i64::from(cred.priority))
        .bind(&cred.description);
        if let Some((p, e)) = secrets {
            sql = sql.bind(p).bind(e);
        }
        let mut tx = self.db.begin_write().await?;
        let n = D::tx_execute(&mut tx, sql).await?;
        if n == 0 {
            return Err(Error::not_found(format!("credential {}", cred.id)));
        }
        set_tags::<D>(&mut tx, Tagged::Credential, cred.id, &cred.tags).await?;
        D::commit(tx).await?;
        self.get_credential(cred.id).await
    }

    async fn delete_credential(&self, id: CredentialId) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM credentials WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("credential {id}")));
        }
        Ok(())
    }

    async fn list_credentials(&self, page: Page) -> Result<Paged<Credential>> {
        let w = Where::default();
        let total = self.db.count(w.count("credentials")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                &format!("SELECT {CRED_COLS} FROM credentials"),
                "priority, name, id",
                page,
            ))
            .await?;
        Ok(Paged::new(
            self.credentials_with_tags(rows).await?,
            total,
            page,
        ))
    }

    async fn all_credentials(&self) -> Result<Vec<Credential>> {
        let rows = self
            .db
            .fetch_all(Sql::new(format!(
                "SELECT {CRED_COLS} FROM credentials ORDER BY priority, name, id"
            )))
            .await?;
        self.credentials_with_tags(rows).await
    }

    async fn record_credential_use(
        &self,
        id: CredentialId,
        success: bool,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let q = Sql::new(
            "UPDATE credentials SET success_count = success_count + $2, \
             failure_count = failure_count + $3, last_used = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(success))
        .bind(i64::from(!success))
        .bind(at);
        let n = self
            .db
            .write(move |tx| Box::pin(D::tx_execute(tx, q.clone())))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("credential {id}")));
        }
        Ok(())
    }
}
