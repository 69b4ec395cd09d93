//! Credentials: secrets sealed with the store's cipher, the row identity as associated data.

use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where, or_now};
use crate::sql::tags::{Tagged, load_tags, set_tags};
use crate::sql::{SqlStore, copy_err};
use chrono::{DateTime, Utc};
use netraven_core::cipher::SecretCipher;
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Credential, CredentialId, Page, Paged};
use netraven_core::secret::Secret;
use netraven_core::store::{CredentialStore, check};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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
        let mut leader = match UseTallies::join(&self.credential_uses, id, success, at) {
            Joined::Follower(answer) => {
                // The leader always answers (its drop guard too); a lost sender is a bug.
                return answer
                    .await
                    .unwrap_or_else(|_| Err(Error::internal("credential statistics answer lost")));
            }
            Joined::Leader(leader) => leader,
        };
        let (uses, taken) = (self.credential_uses.clone(), leader.tally.clone());
        let n = self
            .db
            .write(move |tx| {
                // The first run closes the tally to newcomers; a re-run writes the same sums.
                let t = uses.take(id, &taken);
                let q = Sql::new(
                    "UPDATE credentials SET success_count = success_count + $2, \
                     failure_count = failure_count + $3, \
                     last_used = CASE WHEN last_used IS NULL OR last_used < $4 THEN $4 \
                     ELSE last_used END WHERE id = $1",
                )
                .bind(id)
                .bind(t.success)
                .bind(t.failure)
                .bind(t.last);
                Box::pin(D::tx_execute(tx, q))
            })
            .await;
        let out = match n {
            Ok(0) => Err(Error::not_found(format!("credential {id}"))),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        leader.answer(&out);
        out
    }
}

/// Credential-use statistics of concurrent logins, written as one `UPDATE` per credential.
///
/// Every login adds to its credential's counters; with hundreds of sessions a second on a few
/// shared credentials that was one statement per device on the store's busiest path. The first
/// caller for a credential (the leader) queues the write; callers that come before the write
/// runs add their counts to the leader's tally and wait for its outcome. Each caller still
/// returns only once its counts are committed, or with the error that kept them from it.
#[derive(Default)]
pub(crate) struct UseTallies {
    /// Per credential, the tally still open to newcomers.
    open: Mutex<HashMap<CredentialId, Arc<Tally>>>,
}

/// The counts of one write and who waits for its outcome.
pub(crate) struct Tally {
    inner: Mutex<TallyInner>,
}

struct TallyInner {
    sums: Sums,
    /// Callers other than the leader.
    followers: Vec<oneshot::Sender<Result<()>>>,
}

/// What a tally adds to a credential's row.
#[derive(Clone, Copy)]
struct Sums {
    success: i64,
    failure: i64,
    last: DateTime<Utc>,
}

/// How a caller joined a tally.
enum Joined {
    /// It writes the tally (and answers the others).
    Leader(Leader),
    /// It waits for the leader's outcome.
    Follower(oneshot::Receiver<Result<()>>),
}

impl UseTallies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Arc<Tally>>> {
        // Poisoning only means a caller panicked while holding it; the map is still whole.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(tallies: &Arc<Self>, id: CredentialId, success: bool, at: DateTime<Utc>) -> Joined {
        let (s, f) = (i64::from(success), i64::from(!success));
        let mut open = tallies.lock();
        if let Some(t) = open.get(&id) {
            let mut inner = t.lock();
            inner.sums.success += s;
            inner.sums.failure += f;
            inner.sums.last = inner.sums.last.max(at);
            let (tx, rx) = oneshot::channel();
            inner.followers.push(tx);
            return Joined::Follower(rx);
        }
        let t = Arc::new(Tally {
            inner: Mutex::new(TallyInner {
                sums: Sums {
                    success: s,
                    failure: f,
                    last: at,
                },
                followers: Vec::new(),
            }),
        });
        open.insert(id, t.clone());
        Joined::Leader(Leader {
            tallies: tallies.clone(),
            id,
            tally: t,
            answered: false,
        })
    }

    /// Closes `tally` to newcomers (if it is still open) and returns its sums.
    fn take(&self, id: CredentialId, tally: &Arc<Tally>) -> Sums {
        let mut open = self.lock();
        if open.get(&id).is_some_and(|t| Arc::ptr_eq(t, tally)) {
            open.remove(&id);
        }
        // Newcomers join under the map's lock, so the sums are final once it is removed.
        tally.lock().sums
    }
}

/// The leader's duty to answer its followers (with "outcome unknown" if it is dropped first).
struct Leader {
    tallies: Arc<UseTallies>,
    id: CredentialId,
    tally: Arc<Tally>,
    answered: bool,
}

impl Leader {
    fn answer(&mut self, out: &Result<()>) {
        self.answered = true;
        // The write may have failed before it took the tally (no connection): close it, or
        // later callers would join a tally nobody writes or answers any more.
        self.tallies.take(self.id, &self.tally);
        self.tally.answer(out);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.answered {
            // Nobody may join a tally whose outcome nobody will report.
            self.answer(&Err(Error::unavailable(
                "the credential statistics write was abandoned; its outcome is unknown",
            )));
        }
    }
}

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, TallyInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives every follower the leader's outcome.
    fn answer(&self, out: &Result<()>) {
        for f in self.lock().followers.drain(..) {
            // A follower that went away no longer needs it.
            let _ = f.send(out.as_ref().copied().map_err(copy_err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    /// A leader for credential 7 and one follower of it.
    fn leader_and_follower(tallies: &Arc<UseTallies>) -> (Leader, oneshot::Receiver<Result<()>>) {
        let Joined::Leader(leader) = UseTallies::join(tallies, 7, true, at(5)) else {
            panic!("the first caller leads");
        };
        let Joined::Follower(follower) = UseTallies::join(tallies, 7, false, at(9)) else {
            panic!("a second caller follows");
        };
        (leader, follower)
    }

    fn leads(tallies: &Arc<UseTallies>, id: CredentialId) -> bool {
        matches!(
            UseTallies::join(tallies, id, true, at(10)),
            Joined::Leader(_)
        )
    }

    #[tokio::test]
    async fn followers_share_the_leaders_tally_and_outcome() {
        let tallies = Arc::new(UseTallies::default());
        let (mut leader, a) = leader_and_follower(&tallies);
        let Joined::Follower(b) = UseTallies::join(&tallies, 7, true, at(3)) else {
            panic!("a third caller follows");
        };
        // Another credential has a tally of its own.
        assert!(leads(&tallies, 8));
        let sums = tallies.take(7, &leader.tally);
        assert_eq!((sums.success, sums.failure, sums.last), (2, 1, at(9)));
        // Once taken, newcomers start the next tally; the taken one's sums no longer move.
        assert!(leads(&tallies, 7));
        assert_eq!(tallies.take(7, &leader.tally).success, 2);
        leader.answer(&Err(Error::not_found("credential 7")));
        assert_eq!(a.await.unwrap().unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(b.await.unwrap().unwrap_err().kind(), ErrorKind::NotFound);
    }

    /// A write that fails before it runs (the database refuses connections) never takes its
    /// tally: answering closes it, so the next caller leads a write of its own instead of
    /// waiting for one that will not come.
    #[tokio::test]
    async fn a_leader_whose_write_never_ran_closes_its_tally() {
        let tallies = Arc::new(UseTallies::default());
        let (mut leader, follower) = leader_and_follower(&tallies);
        leader.answer(&Err(Error::unavailable("no connection")));
        let e = follower.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(leads(&tallies, 7));
    }

    #[tokio::test]
    async fn a_dropped_leader_answers_its_followers_and_closes_its_tally() {
        let tallies = Arc::new(UseTallies::default());
        let (leader, follower) = leader_and_follower(&tallies);
        drop(leader);
        let e = follower.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        // Nobody waits on the abandoned tally: the next caller leads a new one.
        assert!(leads(&tallies, 7));
    }
}
