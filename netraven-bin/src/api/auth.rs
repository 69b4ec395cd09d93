//! Authentication and authorisation: argon2 password hashes, HS256 JWTs, hashed API tokens,
//! the failed-login limiter, the per-route role check, and the login and `me` handlers.

use super::ApiState;
use super::error::{ApiError, ApiJson, ApiResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Extension;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use netraven_core::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prefix of API tokens, so they can be told from JWTs (and found by secret scanners).
pub const API_TOKEN_PREFIX: &str = "nrt_";

/// Minimum length of a user password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Authentication settings.
#[derive(Clone)]
pub struct AuthSettings {
    /// HS256 signing key for access tokens.
    pub jwt_secret: Vec<u8>,
    /// Lifetime of an access token (30 minutes by default).
    pub token_ttl: Duration,
    /// Failed logins per user name allowed within `login_window` before logins answer 429.
    pub max_failed_logins: u32,
    /// Window for counting failed logins.
    pub login_window: Duration,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &"[REDACTED]")
            .field("token_ttl", &self.token_ttl)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("login_window", &self.login_window)
            .finish()
    }
}

impl AuthSettings {
    /// Settings with the given signing key and the defaults: 30 minute tokens, 5 failed logins
    /// per user name per 5 minutes.
    pub fn new(jwt_secret: Vec<u8>) -> Self {
        AuthSettings {
            jwt_secret,
            token_ttl: Duration::from_secs(30 * 60),
            max_failed_logins: 5,
            login_window: Duration::from_secs(5 * 60),
        }
    }
}

/// A random password of `len` alphanumeric characters.
pub fn random_password(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Hashes a password with argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill(&mut salt[..]);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::internal(format!("salt encoding failed: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a PHC hash. A malformed hash never verifies.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs password hashing (argon2id: ~19 MiB and tens of milliseconds of CPU each) on threads of
/// its own, at most `slots` at once. A burst of logins then waits here instead of taking every
/// blocking-pool thread (which SSH sessions and git use) and a hash's worth of memory per
/// request.
#[derive(Debug)]
pub struct HashGate {
    slots: tokio::sync::Semaphore,
    active: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl HashGate {
    /// A gate letting `slots` hashes (at least one) run at once.
    pub fn new(slots: usize) -> Self {
        HashGate {
            slots: tokio::sync::Semaphore::new(slots.max(1)),
            active: 0.into(),
            peak: 0.into(),
        }
    }

    /// The process's gate: one slot per core.
    pub fn global() -> &'static HashGate {
        static GATE: std::sync::OnceLock<HashGate> = std::sync::OnceLock::new();
        GATE.get_or_init(|| {
            HashGate::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
        })
    }

    /// Most hashes seen running at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on a thread of its own once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        use std::sync::atomic::Ordering::SeqCst;
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| Error::internal("password hashing gate closed"))?;
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("password-hash".into())
            .spawn(move || {
                let _ = tx.send(f());
            });
        let out = match spawned {
            Ok(_) => rx
                .await
                .map_err(|_| Error::internal("password hashing thread failed")),
            Err(e) => Err(Error::internal(format!(
                "cannot start a hashing thread: {e}"
            ))),
        };
        self.active.fetch_sub(1, SeqCst);
        out
    }
}

/// An argon2 hash of a random password, made once per process: login verifies unknown user
/// names against it so that they take as long as known ones.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        hash_password(&hex::encode(bytes)).unwrap_or_default()
    })
}

/// Checks the password rules for new passwords.
pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return Err(Error::invalid(format!(
            "password must be {MIN_PASSWORD_LEN} to 1024 characters"
        )));
    }
    Ok(())
}

/// Creates user `admin` when no user exists yet. With `password` it gets that password
/// (e.g. from `NETRAVEN_ADMIN_PASSWORD`) and `None` is returned; without one a random password
/// is generated and returned so the caller can print it once. Returns `None` when users exist.
pub async fn ensure_admin(
    store: std::sync::Arc<dyn ServerStore>,
    password: Option<String>,
) -> Result<Option<String>> {
    if store.list_users(Page::first(1)).await?.total > 0 {
        return Ok(None);
    }
    let (pw, generated) = match password {
        Some(p) => {
            validate_password(&p)?;
            (p, false)
        }
        None => (random_password(24), true),
    };
    let hash = {
        let pw = pw.clone();
        HashGate::global().run(move || hash_password(&pw)).await??
    };
    store
        .create_user(&User {
            id: 0,
            username: "admin".into(),
            password_hash: hash,
            role: Role::Admin,
            active: true,
            created_at: Utc::now(),
        })
        .await?;
    tracing::info!("created the initial admin user");
    Ok(generated.then_some(pw))
}

/// SHA-256 of an API token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random API token (`nrt_` + 64 hex characters).
pub fn new_api_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill(&mut b[..]);
    format!("{API_TOKEN_PREFIX}{}", hex::encode(b))
}

/// JWT claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User name.
    pub sub: String,
    /// User id.
    pub uid: UserId,
    /// Role at issue time (the role is re-read from the store on every request).
    pub role: Role,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
}

/// Issues an access token for a user.
pub fn issue_jwt(settings: &AuthSettings, user: &User) -> Result<String> {
    let now = Utc::now().timestamp();
    let claims = Claims {
        sub: user.username.clone(),
        uid: user.id,
        role: user.role,
        iat: now,
        exp: now + settings.token_ttl.as_secs() as i64,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&settings.jwt_secret),
    )
    .map_err(|e| Error::internal(format!("token signing failed: {e}")))
}

/// Clock skew allowed on a token's expiry and issue time, in seconds.
const JWT_LEEWAY_SECS: i64 = 5;

fn decode_jwt(settings: &AuthSettings, token: &str) -> Option<Claims> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = JWT_LEEWAY_SECS as u64;
    jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&settings.jwt_secret),
        &v,
    )
    .ok()
    .map(|d| d.claims)
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A JWT from `POST /api/auth/token`.
    Jwt,
    /// An API token.
    ApiToken,
}

/// The authenticated caller, put into the request extensions by the role check.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (as currently stored).
    pub user: User,
    /// How it authenticated.
    pub method: AuthMethod,
}

/// Resolves the bearer token of a request to an active user.
pub async fn authenticate(state: &ApiState, bearer: &str) -> Result<Principal, ApiError> {
    let bad = || ApiError::unauthorized("invalid or expired token");
    let (uid, claims) = if bearer.starts_with(API_TOKEN_PREFIX) {
        let tok = state
            .store
            .find_token(&token_hash(bearer))
            .await?
            .ok_or_else(bad)?;
        let now = Utc::now();
        if tok.expires_at.is_some_and(|e| e <= now) {
            return Err(bad());
        }
        // At most one write a minute per token, however busy the script using it.
        if tok
            .last_used
            .is_none_or(|t| now - t > chrono::Duration::minutes(1))
            && let Err(e) = state.store.touch_token(tok.id, now).await
        {
            tracing::warn!(error = %e, "could not record a token's use");
        }
        (tok.user_id, None)
    } else {
        let c = decode_jwt(&state.auth, bearer).ok_or_else(bad)?;
        (c.uid, Some(c))
    };
    let user = match state.store.get_user(uid).await {
        Ok(u) => u,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(bad()),
        Err(e) => return Err(e.into()),
    };
    // A JWT is its user's only while the user it was issued to still exists under that id:
    // the name must match (a rename ends the user's sessions) and the token cannot be older
    // than the user (an id reused after a delete never inherits the old user's tokens). The
    // role is never taken from the token: it is the stored one, read on every request.
    if let Some(c) = &claims
        && (c.sub != user.username || c.iat < user.created_at.timestamp() - JWT_LEEWAY_SECS)
    {
        return Err(bad());
    }
    let method = match claims {
        Some(_) => AuthMethod::Jwt,
        None => AuthMethod::ApiToken,
    };
    if !user.active {
        return Err(ApiError::unauthorized("user is inactive"));
    }
    Ok(Principal { user, method })
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token needed.
    Public,
    /// An authenticated user with at least this role (viewer < operator < admin).
    Role(Role),
}

/// Middleware: authenticates the bearer token and checks the route's minimum role; puts the
/// [`Principal`] into the request extensions.
pub async fn require_role(
    State((state, role)): State<(ApiState, Role)>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return ApiError::unauthorized("missing bearer token").into_response();
    };
    let principal = match authenticate(&state, token.trim()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if principal.user.role < role {
        return ApiError::forbidden(format!(
            "this requires the {} role; you are {}",
            role.as_str(),
            principal.user.role.as_str()
        ))
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Counts failed logins in memory per (user name, client address), in a bounded table. Too
/// many failures within the window block that user name from that address until the window
/// moves on, so someone else's failures from another address never lock the admin out (and a
/// spray over many names from one address meets the password hashing gate, not a lockout that
/// would also shut out the legitimate users behind the same address). When the table is full
/// the entry whose last failure is oldest makes room: other users' lockouts are never cleared
/// wholesale.
#[derive(Debug)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<LimitKey, Vec<Instant>>>,
    capacity: usize,
}

/// A failure counter's key: a user name from an address (if known).
type LimitKey = (String, Option<std::net::IpAddr>);

/// Failures kept per counter (more than any limit in use).
const MAX_KEPT: usize = 64;

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::with_capacity(50_000)
    }
}

impl LoginLimiter {
    /// A limiter keeping at most `capacity` counters.
    pub fn with_capacity(capacity: usize) -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    /// Whether `username` may try to log in now from `addr`; if not, how long until it may.
    pub fn check(
        &self,
        username: &str,
        addr: Option<std::net::IpAddr>,
        max: u32,
        window: Duration,
    ) -> std::result::Result<(), Duration> {
        let mut g = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let Some(v) = g.get_mut(&(username.to_string(), addr)) else {
            return Ok(());
        };
        v.retain(|t| now.duration_since(*t) < window);
        let limit = max.max(1) as usize;
        if v.len() < limit {
            return Ok(());
        }
        // Free again when the oldest failure that still counts leaves the window.
        let oldest = v[v.len() - limit];
        Err(window
            .saturating_sub(now.duration_since(oldest))
            .max(Duration::from_secs(1)))
    }

    /// Whether `username` may try to log in now (any address).
    pub fn allowed(&self, username: &str, max: u32, window: Duration) -> bool {
        self.check(username, None, max, window).is_ok()
    }

    /// Records a failed login of `username` from `addr`.
    pub fn failed_from(&self, username: &str, addr: Option<std::net::IpAddr>) {
        let mut g = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = (username.to_string(), addr);
        if !g.contains_key(&key) && g.len() >= self.capacity {
            // Evict the counter whose last failure is oldest (the least likely to block).
            if let Some(old) = g
                .iter()
                .min_by_key(|(_, v)| v.last().copied())
                .map(|(k, _)| k.clone())
            {
                g.remove(&old);
            }
        }
        let v = g.entry(key).or_default();
        v.push(Instant::now());
        // Only the newest failures can matter for a limit.
        if v.len() > MAX_KEPT {
            let drop = v.len() - MAX_KEPT;
            v.drain(..drop);
        }
    }

    /// Records a failed login (address unknown).
    pub fn failed(&self, username: &str) {
        self.failed_from(username, None);
    }

    /// Clears the failures of a user name from an address after a successful login.
    pub fn succeeded_from(&self, username: &str, addr: Option<std::net::IpAddr>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(username.to_string(), addr));
    }

    /// Clears the failures of a user name after a successful login (address unknown).
    pub fn succeeded(&self, username: &str) {
        self.succeeded_from(username, None);
    }

    /// Counters held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The longest user name or password a login accepts; longer ones are refused before any
/// lookup or hashing.
pub const MAX_LOGIN_FIELD: usize = 256;

// ---------------------------------------------------------------------------------------------
// Login and `me`

/// Login form (form-encoded or JSON). Extra OAuth2 fields (`grant_type`, `scope`, …) are ignored
/// so OAuth2 password-flow clients work.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// User name.
    pub username: String,
    /// Password.
    #[schema(value_type = String)]
    pub password: Secret,
}

/// `POST /api/auth/token`.
pub async fn login(State(st): State<ApiState>, req: Request) -> ApiResult<Response> {
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: LoginForm = if is_form {
        axum::Form::<LoginForm>::from_request(req, &())
            .await
            .map_err(|r| ApiError::new(r.status(), "invalid_input", r.body_text()))
            .map(|f| f.0)?
    } else {
        ApiJson::<LoginForm>::from_request(req, &()).await?.0
    };
    if form.username.len() > MAX_LOGIN_FIELD || form.password.expose().len() > MAX_LOGIN_FIELD {
        return Err(ApiError::invalid(format!(
            "username and password: at most {MAX_LOGIN_FIELD} bytes each"
        )));
    }
    let a = &st.auth;
    if let Err(wait) = st
        .limiter
        .check(&form.username, addr, a.max_failed_logins, a.login_window)
    {
        tracing::warn!("login refused: too many failed attempts for this user name");
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed logins for this user; try again later",
        )
        .into_response();
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(resp);
    }
    let user = st.store.get_user_by_name(&form.username).await?;
    let known = matches!(&user, Some(u) if u.active);
    // Unknown and inactive users are checked against a dummy hash, so the response time does not
    // tell which user names exist.
    let hash = match &user {
        Some(u) if u.active => u.password_hash.clone(),
        _ => dummy_hash().to_string(),
    };
    let pw = form.password.clone();
    let verified = HashGate::global()
        .run(move || verify_password(pw.expose(), &hash))
        .await
        .unwrap_or(false);
    let ok = known && verified;
    let Some(user) = user.filter(|_| ok) else {
        st.limiter.failed_from(&form.username, addr);
        tracing::warn!("failed login");
        return Err(ApiError::unauthorized("incorrect username or password"));
    };
    st.limiter.succeeded_from(&form.username, addr);
    let token = issue_jwt(a, &user)?;
    tracing::info!(user_id = user.id, "login");
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": a.token_ttl.as_secs(),
    }))
    .into_response())
}

/// `GET /api/auth/me`.
pub async fn me(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    Json(json!({ "user": p.user, "auth": p.method }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        // The dummy hash used for unknown users is a real argon2 hash nobody knows.
        assert!(PasswordHash::new(dummy_hash()).is_ok());
        assert!(!verify_password("", dummy_hash()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_is_bounded_by_the_gate() {
        let gate = std::sync::Arc::new(HashGate::new(2));
        let h = hash_password("correct horse").unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (gate, h) = (gate.clone(), h.clone());
            tasks.push(tokio::spawn(async move {
                let pw = if i % 2 == 0 { "correct horse" } else { "wrong" };
                gate.run(move || verify_password(pw, &h)).await.unwrap()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        assert_eq!(ok, 4);
        assert!((1..=2).contains(&gate.peak()), "peak {}", gate.peak());
    }

    #[test]
    fn jwt_round_trip() {
        let s = AuthSettings::new(b"k".to_vec());
        let u = User {
            id: 7,
            username: "a".into(),
            password_hash: String::new(),
            role: Role::Viewer,
            active: true,
            created_at: Utc::now(),
        };
        let t = issue_jwt(&s, &u).unwrap();
        assert_eq!(decode_jwt(&s, &t).unwrap().uid, 7);
        assert!(decode_jwt(&AuthSettings::new(b"other".to_vec()), &t).is_none());
    }

    #[test]
    fn limiter_blocks_after_max() {
        let l = LoginLimiter::default();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.allowed("u", 3, w));
            l.failed("u");
        }
        assert!(!l.allowed("u", 3, w));
        assert!(l.allowed("v", 3, w));
        l.succeeded("u");
        assert!(l.allowed("u", 3, w));
    }
}
