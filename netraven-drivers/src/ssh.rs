//! The SSH transport on `ssh2` (libssh2): a [`Driver`] per platform, and its [`Session`].
//!
//! libssh2 runs in non-blocking mode, driven from the async runtime ([`SshIo`]): a libssh2
//! call that would block returns `EAGAIN`, the task waits on the session's socket in the
//! direction libssh2 asks for (`block_directions`, tokio's `AsyncFd`) and calls again, so a
//! session costs a task and its buffers, not a thread. Every wait runs under the deadline of the
//! operation. Only jump hosts' bastion sessions stay blocking, each on its own thread (see
//! `jump`).

use crate::expect::{
    PromptLearner, ReaderLimits, ShellReader, Step, TermFilter, clean_output, comment_lines,
};
use crate::platform::{Platform, SharedRegex};
use crate::telnet::TelnetConn;
use async_trait::async_trait;
use netraven_core::driver::{Driver, Session};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Credential, Device, HostKey, HostKeyPolicy, Transport};
use netraven_core::normalise::Rules;
use netraven_core::store::{HostKeyStore, JumpHostStore};
use regex::Regex;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Host key, cipher and MAC lists offered to every device, most preferred first.
///
/// What real devices need: current Cisco IOS-XE (16.x+), NX-OS 9+, Arista EOS, Junos and any
/// OpenSSH offer curve25519 or ECDH key exchange, rsa-sha2/ECDSA/ed25519 host keys, CTR or GCM
/// ciphers and hmac-sha2. Devices that offer *only* hmac-sha1 (classic IOS 12.x/15.x, older IOS-XE
/// 3.x and ASA releases) also offer only SHA-1 key exchange, so they need `legacy_ssh` anyway;
/// hmac-sha1 is therefore not in the modern list. With the AEAD ciphers (chacha20-poly1305,
/// AES-GCM) no MAC is used at all.
const MODERN_HOSTKEY: &str = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
const MODERN_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";
const MODERN_MACS: &str =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512";
/// Appended (after the modern ones, so a device offering both still gets the modern choice) only
/// for devices with `legacy_ssh`. They exist only when libssh2 was compiled with
/// `LIBSSH2_KEX_SHA1_ENABLE`, `LIBSSH2_HMAC_SHA1_ENABLE`, `LIBSSH2_RSA_SHA1_ENABLE` and
/// `LIBSSH2_3DES_ENABLE` (this workspace's `.cargo/config.toml`); libssh2 drops names it lacks
/// from a preference list (see [`legacy_algorithms_missing`]).
const LEGACY_HOSTKEY: &str = "ssh-rsa";
const LEGACY_CIPHERS: &str = "aes128-cbc,aes192-cbc,aes256-cbc,3des-cbc";
const LEGACY_MACS: &str = "hmac-sha1";
/// SHA-1 key exchange: used only with `legacy_ssh` (see [`set_algorithms`] for how).
const LEGACY_KEX: &str =
    "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1";

/// Tunables of the SSH transport.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Terminal width requested for the PTY (wide, so devices do not wrap lines).
    pub pty_width: u32,
    /// Terminal height requested for the PTY.
    pub pty_height: u32,
    /// Read buffer size per session.
    pub read_buffer: usize,
    /// Largest output of one command (bytes received); past it the command fails with
    /// `too_large` (`worker.max_output_bytes`, default 64 MiB).
    pub max_output_bytes: usize,
    /// Longest line of output; past it the command fails with `too_large` (default 4 MiB).
    pub max_line_bytes: usize,
    /// After login, how long the device may stay silent without showing a prompt the
    /// platform's pattern matches before the prompt is learned from the session instead
    /// (default 2 s; scaled by the timeout multiplier).
    pub prompt_learn_after: Duration,
    /// While learning a prompt: the silence that ends the answer to one newline (default
    /// 500 ms; scaled by the timeout multiplier).
    pub prompt_quiet: Duration,
    /// Where the jump hosts devices name (`jump_host`) are looked up; `None`: a device with a
    /// jump host fails with `invalid_input`.
    pub jump_hosts: Option<JumpHosts>,
}

/// The jump host store a driver resolves `jump_host` names in (see [`SshOptions::jump_hosts`]).
#[derive(Clone)]
pub struct JumpHosts(pub Arc<dyn JumpHostStore>);

impl std::fmt::Debug for JumpHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JumpHosts(..)")
    }
}

impl Default for SshOptions {
    fn default() -> Self {
        let limits = ReaderLimits::default();
        SshOptions {
            pty_width: 511,
            pty_height: 24,
            // libssh2 holds each received packet itself; reads only copy out of it, so a small
            // buffer costs a few more calls, not more round trips (32 KB × 1,000 sessions was
            // 32 MB of the peak).
            read_buffer: 4 * 1024,
            max_output_bytes: limits.max_output_bytes,
            max_line_bytes: limits.max_line_bytes,
            prompt_learn_after: Duration::from_secs(2),
            prompt_quiet: Duration::from_millis(500),
            jump_hosts: None,
        }
    }
}

/// A data-driven SSH driver: one [`Platform`] over `ssh2`.
#[derive(Debug, Clone)]
pub struct SshDriver {
    platform: Arc<Platform>,
    host_keys: Arc<dyn HostKeyStore>,
    options: SshOptions,
}

impl SshDriver {
    /// A driver for `platform` that pins host keys in `host_keys`.
    pub fn new(platform: Platform, host_keys: Arc<dyn HostKeyStore>) -> Self {
        SshDriver {
            platform: Arc::new(platform),
            host_keys,
            options: SshOptions::default(),
        }
    }

    /// Replaces the transport options.
    pub fn with_options(mut self, options: SshOptions) -> Self {
        self.options = options;
        self
    }

    /// The platform this driver speaks.
    pub fn platform_data(&self) -> &Platform {
        &self.platform
    }
}

fn conn_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Connection, msg)
}

/// Maps an ssh2 error to an error kind. Never includes a credential.
pub(crate) fn map_ssh(e: ssh2::Error, what: &str) -> Error {
    use libssh2_codes::*;
    let kind = match e.code() {
        ssh2::ErrorCode::Session(c) => match c {
            TIMEOUT | SOCKET_TIMEOUT | EAGAIN => ErrorKind::Timeout,
            AUTHENTICATION_FAILED
            | PUBLICKEY_UNVERIFIED
            | PASSWORD_EXPIRED
            | KEYFILE_AUTH_FAILED => ErrorKind::Auth,
            SOCKET_SEND | SOCKET_RECV | SOCKET_DISCONNECT | BANNER_RECV | BANNER_SEND
            | BAD_SOCKET | CHANNEL_CLOSED | CHANNEL_EOF_SENT => ErrorKind::Connection,
            _ => ErrorKind::Protocol,
        },
        ssh2::ErrorCode::SFTP(_) => ErrorKind::Protocol,
    };
    let mut msg = format!("{what}: {}", e.message());
    if matches!(e.code(), ssh2::ErrorCode::Session(KEX_FAILURE))
        || e.message().contains("kex")
        || e.message().to_ascii_lowercase().contains("key exchange")
    {
        msg.push_str(" (no common algorithms; old devices may need legacy_ssh)");
    }
    Error::new(kind, msg).with_source(e)
}

/// The libssh2 error codes we branch on.
mod libssh2_codes {
    pub const BANNER_RECV: i32 = -2;
    pub const BANNER_SEND: i32 = -3;
    pub const KEX_FAILURE: i32 = -5;
    pub const SOCKET_SEND: i32 = -7;
    pub const TIMEOUT: i32 = -9;
    pub const SOCKET_DISCONNECT: i32 = -13;
    pub const PASSWORD_EXPIRED: i32 = -15;
    pub const AUTHENTICATION_FAILED: i32 = -18;
    pub const PUBLICKEY_UNVERIFIED: i32 = -19;
    pub const CHANNEL_FAILURE: i32 = -21;
    pub const CHANNEL_REQUEST_DENIED: i32 = -22;
    pub const CHANNEL_CLOSED: i32 = -26;
    pub const CHANNEL_EOF_SENT: i32 = -27;
    pub const SOCKET_TIMEOUT: i32 = -30;
    pub const EAGAIN: i32 = -37;
    pub const SOCKET_RECV: i32 = -43;
    pub const BAD_SOCKET: i32 = -45;
    pub const KEYFILE_AUTH_FAILED: i32 = -48;
}

pub(crate) fn map_io(e: std::io::Error, what: &str) -> Error {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::TimedOut | K::WouldBlock => ErrorKind::Timeout,
        _ => ErrorKind::Connection,
    };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

pub(crate) fn remaining(deadline: Instant, what: &str) -> Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return Err(Error::timeout(format!("deadline passed while {what}")));
    }
    Ok(deadline - now)
}

pub(crate) fn ms(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

/// Opens a TCP connection to `address:port` within the deadline (first address that answers),
/// from the async runtime: a non-blocking socket for a [`SshIo`] or a telnet connection.
pub(crate) async fn tcp_connect_async(
    address: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream> {
    let at = tokio::time::Instant::from_std(deadline);
    let addrs: Vec<_> = tokio::time::timeout_at(at, tokio::net::lookup_host((address, port)))
        .await
        .map_err(|_| Error::timeout(format!("deadline passed while resolving {address}")))?
        .map_err(|e| map_io(e, &format!("resolving {address}")))?
        .collect();
    let mut last = conn_err(format!("{address} resolved to no address"));
    for addr in addrs {
        remaining(deadline, "connecting")?;
        match tokio::time::timeout_at(at, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Error::timeout(format!(
                    "deadline passed while connecting to {addr}"
                )));
            }
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                // Handed to libssh2 or the telnet client as a plain (still non-blocking) socket.
                return s
                    .into_std()
                    .map_err(|e| map_io(e, "taking the socket from the runtime"));
            }
            Ok(Err(e)) => last = map_io(e, &format!("connecting to {addr}")),
        }
    }
    Err(last)
}

/// The libssh2 error code for "would block".
fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(libssh2_codes::EAGAIN)
}

/// A libssh2 session and the means to wait on its socket.
///
/// A non-blocking session ([`SshIo::connect`]) is driven from the async runtime: [`SshIo::call`]
/// and [`SshIo::io`] run a libssh2 call and, while it returns `EAGAIN`, wait until the socket is
/// ready in the direction libssh2 is blocked on, then call again (libssh2's calls resume where
/// they stopped). A blocking session ([`SshIo::blocking`], a jump host's bastion on its own
/// thread) never returns `EAGAIN`: the same code runs each call once.
pub(crate) struct SshIo {
    pub(crate) sess: ssh2::Session,
    /// A second handle on the session's socket, registered with the runtime's reactor;
    /// `None` for a blocking session.
    fd: Option<tokio::io::unix::AsyncFd<crate::jump::Stream>>,
}

impl SshIo {
    /// A blocking session, for code that runs on its own thread.
    pub(crate) fn blocking(sess: ssh2::Session) -> Self {
        SshIo { sess, fd: None }
    }

    /// A new non-blocking session over `stream` (not yet handshaken).
    pub(crate) fn over(stream: crate::jump::Stream) -> Result<Self> {
        stream
            .set_nonblocking()
            .map_err(|e| map_io(e, "making the socket non-blocking"))?;
        let watch = stream
            .try_clone()
            .map_err(|e| map_io(e, "duplicating the socket"))?;
        let mut sess = ssh2::Session::new().map_err(|e| map_ssh(e, "creating the SSH session"))?;
        sess.set_blocking(false);
        sess.set_tcp_stream(stream);
        // SAFETY: `watch` owns its descriptor (a duplicate of the session's socket) for as long
        // as the `AsyncFd` owns `watch`, and `as_raw_fd` always returns that same descriptor.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(watch) }
            .map_err(|e| map_io(e.into_parts().1, "registering the socket with the runtime"))?;
        Ok(SshIo { sess, fd: Some(fd) })
    }

    /// Shuts the session's socket down both ways: every wait on the peer ends at once (EOF).
    fn shutdown(&self) {
        if let Some(fd) = &self.fd {
            fd.get_ref().shutdown();
        }
    }

    /// Waits, until `deadline`, for the socket to be ready the way libssh2 is blocked on.
    async fn wait(&self, deadline: Instant) -> std::io::Result<()> {
        let timed_out = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out waiting on the socket",
            )
        };
        // A blocking session reports `EAGAIN` only when its own timeout ran out.
        let Some(fd) = &self.fd else {
            return Err(timed_out());
        };
        let dirs = self.sess.block_directions();
        let ready = async {
            // Readiness is cleared before the call is retried (which then reads or writes
            // everything the socket has): an event after that sets it again, none is lost.
            match dirs {
                ssh2::BlockDirections::Outbound => fd.writable().await.map(|mut g| g.clear_ready()),
                ssh2::BlockDirections::Both => tokio::select! {
                    r = fd.readable() => r.map(|mut g| g.clear_ready()),
                    w = fd.writable() => w.map(|mut g| g.clear_ready()),
                },
                _ => fd.readable().await.map(|mut g| g.clear_ready()),
            }
        };
        tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), ready)
            .await
            .map_err(|_| timed_out())?
    }

    /// Runs a libssh2 session call until it stops returning `EAGAIN` or the deadline passes
    /// (then: libssh2's timeout error).
    pub(crate) async fn call<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(&ssh2::Session) -> std::result::Result<T, ssh2::Error>,
    ) -> std::result::Result<T, ssh2::Error> {
        loop {
            match f(&self.sess) {
                Err(e) if is_eagain(&e) => {}
                r => return r,
            }
            if self.wait(deadline).await.is_err() {
                return Err(ssh2::Error::new(
                    ssh2::ErrorCode::Session(libssh2_codes::TIMEOUT),
                    "timed out waiting on the socket",
                ));
            }
        }
    }

    /// [`SshIo::call`] for channel I/O (`std::io` errors; `WouldBlock` is `EAGAIN`): a
    /// timeout is an error of kind `TimedOut`.
    pub(crate) async fn io<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        loop {
            match f() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.wait(deadline).await?;
        }
    }

    /// Writes all of `data` to a channel stream within the deadline.
    pub(crate) async fn write_all(
        &self,
        chan: &mut ssh2::Channel,
        data: &[u8],
        deadline: Instant,
    ) -> std::io::Result<()> {
        let mut sent = 0;
        while sent < data.len() {
            let n = self.io(deadline, || chan.write(&data[sent..])).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            sent += n;
        }
        // libssh2's flush of a channel stream drops what was received and not read yet (left
        // over from before this command).
        self.io(deadline, || chan.flush()).await
    }
}

/// Base64 (standard alphabet, no padding), as OpenSSH prints `SHA256:` fingerprints.
fn b64_nopad(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(data)
}

fn key_type_name(t: ssh2::HostKeyType) -> &'static str {
    match t {
        ssh2::HostKeyType::Rsa => "ssh-rsa",
        ssh2::HostKeyType::Dss => "ssh-dss",
        ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
        ssh2::HostKeyType::Unknown => "unknown",
    }
}

/// The server's host key as OpenSSH prints it: `SHA256:` and unpadded base64.
pub(crate) fn fingerprint(sess: &ssh2::Session) -> Result<String> {
    let hash = sess
        .host_key_hash(ssh2::HashType::Sha256)
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "cannot hash the host key"))?;
    Ok(format!("SHA256:{}", b64_nopad(hash)))
}

/// How far a device's host key is trusted for this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostTrust {
    /// The key matched one pinned before this connection.
    Known,
    /// No key was pinned: this connection pinned it (trust on first use).
    FirstUse,
    /// The policy is `off`: the key is not checked.
    Unverified,
}

/// Checks the server's host key against the policy. Runs after the key exchange and before
/// any credential is sent.
pub(crate) async fn check_host_key(
    sess: &ssh2::Session,
    device: &Device,
    store: &Arc<dyn HostKeyStore>,
) -> Result<HostTrust> {
    if device.host_key_policy == HostKeyPolicy::Off {
        return Ok(HostTrust::Unverified);
    }
    let key_type = sess
        .host_key()
        .map(|(_, t)| key_type_name(t))
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "server sent no host key"))?;
    let fingerprint = fingerprint(sess)?;
    let pinned = store.get_host_key(&device.address, device.port).await?;
    let mut trust = HostTrust::Known;
    let pinned = match (pinned, device.host_key_policy) {
        (Some(k), _) => k,
        (None, HostKeyPolicy::Strict) => {
            return Err(Error::new(
                ErrorKind::HostKey,
                format!(
                    "no host key pinned for {}:{} (policy strict); offered {key_type} {fingerprint}",
                    device.address, device.port
                ),
            ));
        }
        (None, _) => {
            let key = HostKey {
                host: device.address.clone(),
                port: device.port,
                key_type: key_type.to_string(),
                fingerprint: fingerprint.clone(),
                first_seen: netraven_core::clock::Clock::now(&netraven_core::clock::SystemClock),
            };
            let k = store.pin_host_key(&key).await?;
            if k.fingerprint == fingerprint {
                tracing::info!(host = %device.address, port = device.port, %fingerprint, "pinned host key on first use");
                trust = HostTrust::FirstUse;
            }
            k
        }
    };
    if pinned.fingerprint != fingerprint {
        tracing::warn!(host = %device.address, port = device.port, pinned = %pinned.fingerprint, offered = %fingerprint, "host key mismatch");
        return Err(Error::new(
            ErrorKind::HostKey,
            format!(
                "host key of {}:{} changed: pinned {} {}, offered {key_type} {fingerprint}; refusing to log in",
                device.address, device.port, pinned.key_type, pinned.fingerprint
            ),
        ));
    }
    Ok(trust)
}

/// Answers keyboard-interactive prompts: hidden prompts get the password, echoed ones the user.
struct KbdAnswer<'a> {
    user: &'a str,
    password: &'a str,
}

impl ssh2::KeyboardInteractivePrompt for KbdAnswer<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[ssh2::Prompt<'b>],
    ) -> Vec<String> {
        prompts
            .iter()
            .map(|p| {
                if p.echo {
                    self.user.to_string()
                } else {
                    self.password.to_string()
                }
            })
            .collect()
    }
}

/// Password, keyboard-interactive or private-key authentication. A password that holds a PEM or
/// OpenSSH private key (`-----BEGIN`) is used as a key.
pub(crate) async fn authenticate_user(
    io: &SshIo,
    user: &str,
    password: &netraven_core::secret::Secret,
    deadline: Instant,
) -> Result<()> {
    let secret = password.expose();
    let methods = match io
        .call(deadline, |s| s.auth_methods(user).map(str::to_string))
        .await
    {
        Ok(m) => m,
        Err(e) => {
            if io.sess.authenticated() {
                return Ok(());
            }
            return Err(map_ssh(e, "listing authentication methods"));
        }
    };
    let has = |m: &str| methods.split(',').any(|x| x == m);
    if secret.trim_start().starts_with("-----BEGIN") {
        if !has("publickey") {
            return Err(Error::new(
                ErrorKind::Auth,
                format!("device does not accept public keys (offers {methods})"),
            ));
        }
        return io
            .call(deadline, |s| {
                s.userauth_pubkey_memory(user, None, secret, None)
            })
            .await
            .map_err(|e| map_ssh(e, "public key authentication"));
    }
    let mut last: Option<Error> = None;
    if has("password") {
        match io
            .call(deadline, |s| s.userauth_password(user, secret))
            .await
        {
            Ok(()) if io.sess.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => {
                let err = map_ssh(e, "password authentication");
                if err.kind() != ErrorKind::Auth {
                    return Err(err);
                }
                last = Some(err);
            }
        }
    }
    if has("keyboard-interactive") {
        let mut answer = KbdAnswer {
            user,
            password: secret,
        };
        match io
            .call(deadline, |s| {
                s.userauth_keyboard_interactive(user, &mut answer)
            })
            .await
        {
            Ok(()) if io.sess.authenticated() => return Ok(()),
            Ok(()) => {}
            Err(e) => last = Some(map_ssh(e, "keyboard-interactive authentication")),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Auth,
            format!("no usable authentication method (device offers {methods})"),
        )
    }))
}

/// What a shell runs over: an SSH channel, or a telnet connection.
enum Link {
    Ssh {
        /// The session; its socket is shut down before libssh2 frees it (see `Drop`).
        io: SshIo,
        /// The interactive shell's channel; `None` while commands run over exec channels.
        chan: Option<ssh2::Channel>,
        /// Exec channels given up on before their end: freed with the session (after the
        /// socket is shut down, so freeing them never waits on the device).
        abandoned: Vec<ssh2::Channel>,
        /// The jump hosts this session is tunnelled through, if any: closed after it.
        tunnel: Option<crate::jump::Tunnel>,
    },
    Telnet(TelnetConn),
}

impl Link {
    async fn write(&mut self, data: &[u8], deadline: Instant) -> std::io::Result<()> {
        match self {
            Link::Ssh { io, chan, .. } => {
                let chan = chan.as_mut().ok_or_else(no_shell)?;
                io.write_all(chan, data, deadline).await
            }
            Link::Telnet(t) => t.send(data, deadline).await,
        }
    }

    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> std::io::Result<usize> {
        match self {
            Link::Ssh { io, chan, .. } => {
                let chan = chan.as_mut().ok_or_else(no_shell)?;
                io.io(deadline, || chan.read(buf)).await
            }
            Link::Telnet(t) => t.read(buf, deadline).await,
        }
    }

    /// Says `exit` and leaves, best effort and without waiting on the device.
    fn close(&mut self, exit: &str) {
        match self {
            Link::Ssh { io, chan, .. } => {
                // One non-blocking attempt each: nothing here may wait on the device.
                if let Some(chan) = chan {
                    let _ = chan.write(exit.as_bytes());
                }
                let _ = io.sess.disconnect(None, "bye", None);
            }
            Link::Telnet(t) => t.try_send(exit.as_bytes()),
        }
    }
}

/// A shell read or write while the session has no shell channel (exec mode): a bug, never
/// device input.
fn no_shell() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "no interactive shell is open on this session",
    )
}

impl Drop for Link {
    fn drop(&mut self) {
        match self {
            Link::Ssh { io, tunnel, .. } => {
                io.shutdown();
                // libssh2 frees a channel only after the peer's close: in blocking mode that
                // waits on the device, and in non-blocking mode the free returns EAGAIN and the
                // whole session (~60 KB) is never freed, one leak per device. Shutting the
                // socket down first ends every such wait at once (EOF), so the blocking free
                // that follows (the fields' drops) completes without waiting on the device.
                io.sess.set_timeout(1000);
                io.sess.set_blocking(true);
                drop_tunnel(tunnel.take());
            }
            Link::Telnet(t) => t.shutdown(),
        }
    }
}

/// One interactive shell (over SSH or telnet) and what reads its output.
struct Shell {
    link: Link,
    reader: ShellReader,
    platform: Arc<Platform>,
    buf: Vec<u8>,
    hostname: String,
    limits: ReaderLimits,
    /// Silence after login before the prompt is learned.
    learn_after: Duration,
    /// Silence that ends one answer while learning.
    quiet: Duration,
    /// What the session wants the device's log to say (e.g. a learned prompt).
    notes: Vec<String>,
    /// Set while commands run over exec channels (no shell open yet): the credential the
    /// shell needs if the device refuses exec requests and the session falls back to it.
    exec: Option<Credential>,
    /// PTY size (width, height) asked for when a shell is opened.
    pty: (u32, u32),
}

/// Why a command over an exec channel did not give its output.
enum ExecFail {
    /// The device refused the exec channel or request (or refused a command for want of
    /// privilege, on a platform with an enable step): the session uses the shell instead.
    FallBack(String),
    /// Any other failure: the command's error.
    Failed(Error),
}

impl From<Error> for ExecFail {
    fn from(e: Error) -> Self {
        ExecFail::Failed(e)
    }
}

/// Bytes of an exec'd command's error stream kept (for its error message).
const EXEC_STDERR_KEEP: usize = 64 * 1024;

/// How the first prompt was found.
enum FirstPrompt {
    /// The platform's pattern matched it.
    Matched(String),
    /// It was learned; the reader's pattern was replaced. (prompt, base)
    Learned(String, String),
}

/// Answers to a newline a prompt is learned from, at most.
const LEARN_TRIES: usize = 6;

impl Shell {
    async fn send(&mut self, text: &str, deadline: Instant) -> Result<()> {
        remaining(deadline, "sending")?;
        self.link
            .write(text.as_bytes(), deadline)
            .await
            .map_err(|e| map_io(e, "sending to the device"))
    }

    /// Reads until the prompt (or an extra pattern) shows at the end of the output, answering
    /// pagers on the way.
    async fn read_until(&mut self, deadline: Instant, what: &str) -> Result<Step> {
        match self.read_step(deadline, None, what).await? {
            Some(s) => Ok(s),
            None => Err(Error::timeout(format!(
                "no prompt within the deadline while {what}"
            ))),
        }
    }

    /// Like [`Shell::read_until`], but with `idle` set, returns `None` when the device stays
    /// silent that long (before the deadline) without a prompt or extra pattern at the end.
    async fn read_step(
        &mut self,
        deadline: Instant,
        idle: Option<Duration>,
        what: &str,
    ) -> Result<Option<Step>> {
        loop {
            let left = remaining(deadline, what)?;
            let wait = idle.map_or(left, |i| i.min(left));
            let n = match self.link.read(&mut self.buf, Instant::now() + wait).await {
                Ok(0) => {
                    return Err(conn_err(format!(
                        "connection closed by the device while {what}"
                    )));
                }
                Ok(n) => n,
                Err(e) => {
                    let err = map_io(e, what);
                    if err.kind() == ErrorKind::Timeout && idle.is_some() && wait < left {
                        return Ok(None);
                    }
                    if err.kind() == ErrorKind::Timeout {
                        // What was awaited, never what the device sent: its last line may be
                        // half a secret (`enable secret 9 $9$…` and then silence).
                        return Err(Error::timeout(format!(
                            "no prompt within the deadline while {what}"
                        )));
                    }
                    return Err(err);
                }
            };
            match self.reader.feed(&self.buf[..n]) {
                Step::More => {}
                Step::Pager => {
                    let reply = self.platform.spec.pager_reply.clone();
                    self.send(&reply, deadline).await?;
                }
                Step::TooLarge(what_limit) => {
                    self.reader.clear();
                    let limit = match what_limit {
                        "line" => {
                            format!("a line longer than {} bytes", self.limits.max_line_bytes)
                        }
                        _ => format!("more than {} bytes", self.limits.max_output_bytes),
                    };
                    return Err(Error::new(
                        ErrorKind::TooLarge,
                        format!("the device sent {limit} while {what}; nothing of it is kept"),
                    ));
                }
                s => return Ok(Some(s)),
            }
        }
    }

    /// Runs a command and returns its cleaned output.
    async fn command(&mut self, command: &str, deadline: Instant) -> Result<String> {
        self.reader.clear();
        self.reader.set_extra(Vec::new());
        self.send(&format!("{command}\n"), deadline).await?;
        self.read_until(deadline, &format!("running '{command}'"))
            .await?;
        let out = clean_output(&self.reader.take(), command);
        if let Some(line) = self.platform.is_command_error(&out) {
            // The device's error line goes through the platform's secret rules first: it is
            // device output like any other.
            let line = self.platform.rules.redact(&line);
            return Err(Error::new(
                ErrorKind::Command,
                format!("'{command}' rejected: {}", line.trim()),
            ));
        }
        Ok(out)
    }

    /// Finds the prompt after login: answers the platform's login dialogue (menus, "press any
    /// key", in-shell user/password prompts), waits for something prompt-like, then sends a
    /// newline and takes the last line of the answer, so a banner or MOTD that looks like a
    /// prompt is not mistaken for one.
    ///
    /// When nothing the platform's pattern matches shows within `learn_after` of silence, the
    /// prompt is learned instead ([`Shell::learn_prompt`]).
    async fn find_prompt(&mut self, cred: &Credential, deadline: Instant) -> Result<FirstPrompt> {
        let login = self.platform.login.clone();
        self.reader.set_extra(login);
        let mut answered = 0;
        let learn_after = Some(self.learn_after);
        let mut prev = loop {
            match self
                .read_step(deadline, learn_after, "waiting for the first prompt")
                .await?
            {
                None => {
                    self.reader.set_extra(Vec::new());
                    return self.learn_prompt(deadline).await;
                }
                Some(Step::Prompt(p)) => break p,
                Some(Step::Extra(i)) => {
                    answered += 1;
                    if answered > 8 {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            format!("{}: login dialogue does not end", self.hostname),
                        ));
                    }
                    let send = self
                        .platform
                        .spec
                        .login
                        .get(i)
                        .map(|l| l.send.clone())
                        .unwrap_or_default();
                    self.reader.clear();
                    if send == "{password}" {
                        // The secret is sent, never logged.
                        self.send(&format!("{}\n", cred.password.expose()), deadline)
                            .await?;
                    } else {
                        let text = send.replace("{username}", &cred.username);
                        self.send(&format!("{text}\n"), deadline).await?;
                    }
                }
                Some(_) => break String::new(),
            }
        };
        self.reader.set_extra(Vec::new());
        for _ in 0..3 {
            self.reader.clear();
            self.send("\n", deadline).await?;
            let p = match self
                .read_step(deadline, learn_after, "finding the prompt")
                .await?
            {
                // What looked like a prompt was a banner line; the real one does not match.
                None => return self.learn_prompt(deadline).await,
                Some(Step::Prompt(p)) => p,
                Some(_) => String::new(),
            };
            if p == prev {
                break;
            }
            prev = p;
        }
        self.reader.clear();
        Ok(FirstPrompt::Matched(prev))
    }

    /// The telnet login dialogue: answers `Username:`/`login:` with the user and `Password:`
    /// with the password (each at most once: asked again means refused), until the device
    /// shows something else and falls silent or shows its prompt. A device without a login
    /// (`no login` on the line) goes straight to its prompt. Then a newline asks for the
    /// prompt again, for [`Shell::find_prompt`].
    async fn telnet_login(&mut self, cred: &Credential, deadline: Instant) -> Result<()> {
        static USER: LazyLock<SharedRegex> = LazyLock::new(|| {
            Regex::new(r"(?i)(user\s*name|login)\s*:\s*$")
                .expect("a constant pattern")
                .into()
        });
        static PASSWORD: LazyLock<SharedRegex> = LazyLock::new(|| {
            Regex::new(r"(?i)pass(word|code)\s*:\s*$")
                .expect("a constant pattern")
                .into()
        });
        static REFUSED: LazyLock<SharedRegex> = LazyLock::new(|| {
            Regex::new(r"(?i)(login invalid|login incorrect|authentication failed|access denied|bad password)\s*$")
                .expect("a constant pattern")
                .into()
        });
        let host = self.hostname.clone();
        let refused = || Error::new(ErrorKind::Auth, format!("{host}: telnet login refused"));
        self.reader
            .set_extra(vec![USER.clone(), PASSWORD.clone(), REFUSED.clone()]);
        let (mut user_sent, mut password_sent) = (false, false);
        loop {
            // Before the first question the device may be slow to say anything at all.
            let idle = if user_sent || password_sent {
                self.learn_after
            } else {
                self.learn_after * 3
            };
            let step = match self
                .read_step(deadline, Some(idle), "logging in over telnet")
                .await
            {
                Ok(s) => s,
                // A device that hangs up right after the password refused it.
                Err(e) if password_sent && e.kind() == ErrorKind::Connection => {
                    return Err(refused());
                }
                Err(e) => return Err(e),
            };
            match step {
                Some(Step::Extra(0)) if !user_sent && !password_sent => {
                    user_sent = true;
                    self.reader.clear();
                    self.send(&format!("{}\n", cred.username), deadline).await?;
                }
                Some(Step::Extra(1)) if !password_sent => {
                    password_sent = true;
                    self.reader.clear();
                    // The secret is sent, never logged.
                    self.send(&format!("{}\n", cred.password.expose()), deadline)
                        .await?;
                }
                Some(Step::Extra(_)) => return Err(refused()),
                // A prompt, or silence after the dialogue: logged in (a prompt the pattern
                // does not match is learned by `find_prompt`).
                Some(_) | None => break,
            }
        }
        self.reader.set_extra(Vec::new());
        self.reader.clear();
        self.send("\n", deadline).await
    }

    /// Learns the prompt netmiko-style ([`PromptLearner`]): sends a newline, takes the last
    /// line of the answer once the device is quiet, and again, until the same line comes twice
    /// and ends in one of the platform's prompt terminators; from then on the reader
    /// recognises that prompt. A prompt the platform's pattern matches on the way ends the
    /// search the normal way.
    async fn learn_prompt(&mut self, deadline: Instant) -> Result<FirstPrompt> {
        let mut learner = PromptLearner::new(&self.platform.spec.prompt_terminators);
        let quiet = Some(self.quiet);
        for _ in 0..LEARN_TRIES {
            self.reader.clear();
            self.send("\n", deadline).await?;
            if let Some(Step::Prompt(p)) = self
                .read_step(deadline, quiet, "learning the prompt")
                .await?
            {
                self.reader.clear();
                return Ok(FirstPrompt::Matched(p));
            }
            let text = self.reader.take();
            if let Some(p) = learner.offer(&text) {
                let (pattern, base) = learner.pattern_for(&p);
                self.reader.set_prompt(pattern);
                return Ok(FirstPrompt::Learned(p, base));
            }
        }
        // What was awaited, never what the device sent.
        Err(Error::timeout(format!(
            "no prompt matching platform '{}' within {} ms of silence after login, and none \
             could be learned: the last line did not repeat after {LEARN_TRIES} newlines or \
             ends in none of the terminators {:?}",
            self.platform.name(),
            self.learn_after.as_millis(),
            self.platform.spec.prompt_terminators
        )))
    }

    async fn enable(
        &mut self,
        prompt: &str,
        cred: &Credential,
        deadline: Instant,
    ) -> Result<String> {
        let (Some(spec), Some(unpriv), Some(pw_re)) = (
            self.platform.spec.enable.clone(),
            self.platform.unprivileged_prompt.clone(),
            self.platform.enable_password_prompt.clone(),
        ) else {
            return Ok(prompt.to_string());
        };
        if !unpriv.is_match(prompt) {
            return Ok(prompt.to_string());
        }
        self.reader.clear();
        let mut extra = vec![pw_re];
        extra.extend(self.platform.enable_username_prompt.clone());
        self.reader.set_extra(extra);
        self.send(&format!("{}\n", spec.command), deadline).await?;
        let mut step = self.read_until(deadline, "entering enable mode").await?;
        if step == Step::Extra(1) {
            self.reader.clear();
            self.send(&format!("{}\n", cred.username), deadline).await?;
            step = self.read_until(deadline, "entering enable mode").await?;
        }
        if step == Step::Extra(0) {
            let secret = cred.enable_secret.as_ref().unwrap_or(&cred.password);
            self.reader.clear();
            // The secret is sent, never logged.
            self.send(&format!("{}\n", secret.expose()), deadline)
                .await?;
            step = self.read_until(deadline, "entering enable mode").await?;
        }
        self.reader.set_extra(Vec::new());
        self.reader.clear();
        match step {
            Step::Prompt(p) if !unpriv.is_match(&p) => Ok(p),
            _ => Err(Error::new(
                ErrorKind::Auth,
                format!("{}: enable mode refused", self.hostname),
            )),
        }
    }

    /// Runs a command in the interactive shell, opening it first in exec mode: the commands
    /// of a command job may depend on one another (`configure`, then what to set), which
    /// separate exec channels would each run in a fresh context.
    async fn run(&mut self, command: &str, deadline: Instant) -> Result<String> {
        if self.exec.is_some() {
            self.enter_shell(None, deadline).await?;
        }
        self.command(command, deadline).await
    }

    /// Fetches the configuration: the platform's backup commands, over exec channels in exec
    /// mode (all of them again in the shell when the device refuses that), else in the shell.
    async fn fetch_config(&mut self, deadline: Instant) -> Result<String> {
        if self.exec.is_some() {
            match self.fetch_with(deadline, true).await {
                Ok(out) => return Ok(out),
                Err(ExecFail::Failed(e)) => return Err(e),
                Err(ExecFail::FallBack(why)) => self.fall_back(&why, deadline).await?,
            }
        }
        self.fetch_with(deadline, false).await.map_err(|e| match e {
            ExecFail::Failed(e) => e,
            ExecFail::FallBack(why) => Error::internal(why),
        })
    }

    async fn fetch_with(
        &mut self,
        deadline: Instant,
        exec: bool,
    ) -> std::result::Result<String, ExecFail> {
        let platform = self.platform.clone();
        let mut out = String::new();
        for cmd in &platform.spec.backup {
            let res = if exec {
                self.exec_command(&cmd.command, deadline)
                    .await
                    .map_err(|e| self.fall_back_on(e, cmd.optional))
            } else {
                self.command(&cmd.command, deadline)
                    .await
                    .map_err(ExecFail::Failed)
            };
            let text = match res {
                Ok(t) => t,
                Err(ExecFail::Failed(e)) if cmd.optional && e.kind() == ErrorKind::Command => {
                    tracing::debug!(host = %self.hostname, command = %cmd.command, "optional backup command rejected; left out");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if cmd.discard {
                continue;
            }
            match &cmd.comment {
                Some(prefix) => out.push_str(&comment_lines(&text, prefix)),
                None => out.push_str(&text),
            }
        }
        Ok(out)
    }

    /// On a platform with an enable step, a required command the device rejects over an exec
    /// channel most likely wants privileges the account lacks there: the shell (which enters
    /// enable mode) is used instead.
    fn fall_back_on(&self, e: ExecFail, optional: bool) -> ExecFail {
        match e {
            ExecFail::Failed(e)
                if !optional
                    && e.kind() == ErrorKind::Command
                    && self.platform.spec.enable.is_some() =>
            {
                ExecFail::FallBack(format!("{}; enable mode may be needed", e.message()))
            }
            e => e,
        }
    }

    /// Leaves exec mode after the device refused it: [`Shell::enter_shell`], logged and noted
    /// on the device's log.
    async fn fall_back(&mut self, why: &str, deadline: Instant) -> Result<()> {
        self.enter_shell(Some(why), deadline).await
    }

    /// Leaves exec mode for this session: opens the interactive shell on the same SSH session
    /// and readies it (prompt, enable, paging off). With `why` (the device refused exec), it is
    /// logged and noted on the device's log.
    async fn enter_shell(&mut self, why: Option<&str>, deadline: Instant) -> Result<()> {
        let Some(cred) = self.exec.take() else {
            return Ok(());
        };
        match why {
            Some(why) => {
                tracing::info!(device = %self.hostname, reason = %why, "exec channel not usable; falling back to the interactive shell");
                self.notes.push(format!(
                    "commands over an exec channel failed ({why}); used the interactive shell"
                ));
            }
            None => {
                tracing::debug!(device = %self.hostname, "opening the interactive shell for commands");
            }
        }
        let pty = self.pty;
        let Link::Ssh { io, chan, .. } = &mut self.link else {
            return Err(Error::internal("exec mode on a session without SSH"));
        };
        *chan = Some(shell_channel(io, pty, deadline).await?);
        // The SSH login succeeded already: errors from here on are not a first login's.
        self.prepare(&cred, deadline).await
    }

    /// Runs one command over its own exec channel (no PTY, no prompt, no paging): reads its
    /// output to EOF under the same limits and deadline as the shell, then its error stream
    /// and exit status. A refused channel or exec request is [`ExecFail::FallBack`]; a
    /// non-zero exit status or an error line (the platform's `command_errors`) is a command
    /// error.
    async fn exec_command(
        &mut self,
        command: &str,
        deadline: Instant,
    ) -> std::result::Result<String, ExecFail> {
        let what = format!("running '{command}' over an exec channel");
        let full = format!("{command}{}", self.platform.spec.exec_suffix);
        let limits = self.limits;
        let Link::Ssh { io, abandoned, .. } = &mut self.link else {
            return Err(ExecFail::FallBack("not an SSH session".into()));
        };
        let buf = &mut self.buf;
        remaining(deadline, &what)?;
        let mut chan = match io.call(deadline, |s| s.channel_session()).await {
            Ok(c) => c,
            Err(e) if exec_refused(&e) => {
                return Err(ExecFail::FallBack(format!(
                    "opening a channel: {}",
                    e.message()
                )));
            }
            Err(e) => return Err(map_ssh(e, "opening an exec channel").into()),
        };
        if let Err(e) = io.call(deadline, |_| chan.exec(&full)).await {
            let fail = if exec_refused(&e) {
                ExecFail::FallBack(format!("exec request refused: {}", e.message()))
            } else {
                ExecFail::Failed(map_ssh(e, "sending the exec request"))
            };
            abandoned.push(chan);
            return Err(fail);
        }
        let too_large = |limit: String| {
            Error::new(
                ErrorKind::TooLarge,
                format!("the device sent {limit} while {what}; nothing of it is kept"),
            )
        };
        let timed_out = |e: std::io::Error| {
            let err = map_io(e, &what);
            if err.kind() == ErrorKind::Timeout {
                Error::timeout(format!("no end of output within the deadline while {what}"))
            } else {
                err
            }
        };
        let mut filter = TermFilter::new();
        let mut text: Vec<u8> = Vec::with_capacity(8 * 1024);
        let mut received = 0usize;
        let read: Result<()> = loop {
            if let Err(e) = remaining(deadline, &what) {
                break Err(e);
            }
            match io.io(deadline, || chan.read(buf)).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    received = received.saturating_add(n);
                    if received > limits.max_output_bytes {
                        break Err(too_large(format!(
                            "more than {} bytes",
                            limits.max_output_bytes
                        )));
                    }
                    filter.push(&buf[..n], &mut text);
                    if text.len() - filter.line_start_in(&text) > limits.max_line_bytes {
                        break Err(too_large(format!(
                            "a line longer than {} bytes",
                            limits.max_line_bytes
                        )));
                    }
                }
                Err(e) => break Err(timed_out(e)),
            }
        };
        let mut stderr: Vec<u8> = Vec::new();
        let read = match read {
            Ok(()) => {
                let mut err_stream = chan.stderr();
                loop {
                    if let Err(e) = remaining(deadline, &what) {
                        break Err(e);
                    }
                    match io.io(deadline, || err_stream.read(buf)).await {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            let keep = n.min(EXEC_STDERR_KEEP.saturating_sub(stderr.len()));
                            stderr.extend_from_slice(&buf[..keep]);
                        }
                        Err(e) => break Err(timed_out(e)),
                    }
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = read {
            abandoned.push(chan);
            return Err(e.into());
        }
        // The exit status comes with (or just before) the channel's close; a device that never
        // closes costs a moment, not the deadline: its output is complete (EOF).
        let left = remaining(deadline, &what)?;
        let close_by = Instant::now() + left.min(Duration::from_secs(2));
        let status = match io.call(close_by, |_| chan.wait_close()).await {
            Ok(()) => chan.exit_status().unwrap_or(0),
            Err(_) => {
                abandoned.push(chan);
                0
            }
        };
        let mut out = String::from_utf8_lossy(&text).into_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let stderr = String::from_utf8_lossy(&stderr);
        let error_line = self
            .platform
            .is_command_error(&out)
            .or_else(|| self.platform.is_command_error(&stderr));
        if error_line.is_some() || status != 0 {
            let detail = error_line.or_else(|| {
                stderr
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.trim().chars().take(200).collect())
            });
            // Device output: through the platform's secret rules first.
            let msg = match detail {
                Some(l) => format!(
                    "'{command}' rejected (exit status {status}): {}",
                    self.platform.rules.redact(&l).trim()
                ),
                None => format!("'{command}' rejected: exit status {status}"),
            };
            return Err(Error::new(ErrorKind::Command, msg).into());
        }
        Ok(out)
    }

    fn close(mut self) {
        // Best effort and quick: say goodbye and leave.
        let exit = format!("{}\n", self.platform.spec.exit_command);
        self.link.close(&exit);
    }
}

/// Whether the device refused an exec channel or request (rather than the session failing).
fn exec_refused(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(
            libssh2_codes::CHANNEL_FAILURE | libssh2_codes::CHANNEL_REQUEST_DENIED
        )
    )
}

/// Marks an authentication failure from a device never logged into (see the engine's
/// credential rules) and unpins a key this very connection pinned: trust on first use starts
/// only with a successful login, so a server posing as a device stays "first seen" and is
/// offered one credential per attempt. A telnet device has no host key: its rejections are
/// always from a device not trusted.
async fn untrusted_err(
    e: Error,
    trust: HostTrust,
    device: &Device,
    store: &Arc<dyn HostKeyStore>,
) -> Error {
    if e.kind() != ErrorKind::Auth || trust == HostTrust::Known {
        return e;
    }
    if trust == HostTrust::FirstUse
        && let Err(d) = store.delete_host_key(&device.address, device.port).await
    {
        tracing::warn!(host = %device.address, error = %d, "could not unpin a host key after a failed first login");
    }
    e.on_untrusted_host()
}

/// Stops a tunnel (joins its pump threads) off the async runtime; outside a runtime, in place.
fn drop_tunnel(tunnel: Option<crate::jump::Tunnel>) {
    if let Some(t) = tunnel {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(t));
            }
            Err(_) => drop(t),
        }
    }
}

/// Connects (directly, or through the device's jump hosts) and logs in over SSH, then, with
/// `open_shell`, opens the interactive shell's channel (PTY and shell).
async fn ssh_link(
    platform: &Platform,
    options: &SshOptions,
    device: &Device,
    cred: &Credential,
    store: &Arc<dyn HostKeyStore>,
    deadline: Instant,
    open_shell: bool,
) -> Result<(Link, HostTrust)> {
    let (stream, tunnel) = if device.jump_host.is_some() {
        // Bastion sessions are blocking, on their own threads (see `jump`).
        let jumps = options.jump_hosts.clone();
        let (dev, keys) = (device.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Handle::current();
            let chain = crate::jump::resolve_chain(&dev, jumps.as_ref().map(|j| &j.0), &rt)?;
            crate::jump::connect_through(&chain, &dev, &keys, &rt, deadline)
        })
        .await
        .map_err(join_err)??
    } else {
        let tcp = tcp_connect_async(&device.address, device.port, deadline).await?;
        (crate::jump::Stream::Tcp(tcp), None)
    };
    let io = match SshIo::over(stream) {
        Ok(io) => io,
        Err(e) => {
            drop_tunnel(tunnel);
            return Err(e);
        }
    };
    // From here on the link's drop cleans up after any failure.
    let mut link = Link::Ssh {
        io,
        chan: None,
        abandoned: Vec::new(),
        tunnel,
    };
    let Link::Ssh { io, chan, .. } = &mut link else {
        return Err(Error::internal("an SSH link that is not one"));
    };
    let trust = ssh_session(io, device, cred, platform, store, deadline).await?;
    if open_shell {
        match shell_channel(io, (options.pty_width, options.pty_height), deadline).await {
            Ok(c) => *chan = Some(c),
            Err(e) => return Err(untrusted_err(e, trust, device, store).await),
        }
    }
    Ok((link, trust))
}

/// Opens the interactive shell's channel on a logged-in session: PTY and shell.
async fn shell_channel(
    io: &SshIo,
    (width, height): (u32, u32),
    deadline: Instant,
) -> Result<ssh2::Channel> {
    remaining(deadline, "opening the shell")?;
    let mut chan = io
        .call(deadline, |s| s.channel_session())
        .await
        .map_err(|e| map_ssh(e, "opening a channel"))?;
    io.call(deadline, |_| {
        chan.request_pty("vt100", None, Some((width, height, 0, 0)))
    })
    .await
    .map_err(|e| map_ssh(e, "requesting a PTY"))?;
    io.call(deadline, |_| chan.shell())
        .await
        .map_err(|e| map_ssh(e, "starting the shell"))?;
    Ok(chan)
}

/// Handshake (algorithms checked), host key checked before any secret, authentication, on a
/// new session.
async fn ssh_session(
    io: &SshIo,
    device: &Device,
    cred: &Credential,
    platform: &Platform,
    store: &Arc<dyn HostKeyStore>,
    deadline: Instant,
) -> Result<HostTrust> {
    remaining(deadline, "handshaking")?;
    set_algorithms(&io.sess, device.legacy_ssh)?;
    // `handshake` wants `&mut`; a clone is a handle on the same session.
    let mut sess = io.sess.clone();
    if let Err(e) = io.call(deadline, |_| sess.handshake()).await {
        let mut err = map_ssh(e, "SSH handshake");
        if device.legacy_ssh {
            let missing = legacy_algorithms_missing();
            if !missing.is_empty() {
                err = err.context(format!(
                    "this build of libssh2 lacks legacy algorithms {} (build with the CFLAGS of .cargo/config.toml)",
                    missing.join(",")
                ));
            }
        }
        return Err(err);
    }
    let sess = &io.sess;
    tracing::debug!(
        device = %device.hostname,
        kex = sess.methods(ssh2::MethodType::Kex).unwrap_or("?"),
        hostkey = sess.methods(ssh2::MethodType::HostKey).unwrap_or("?"),
        cipher = sess.methods(ssh2::MethodType::CryptCs).unwrap_or("?"),
        mac = sess.methods(ssh2::MethodType::MacCs).unwrap_or("?"),
        "negotiated"
    );
    check_kex(sess, device)?;
    let trust = check_host_key(sess, device, store).await?;
    remaining(deadline, "authenticating")?;
    let user = match &platform.spec.username_suffix {
        Some(suffix) => format!("{}{suffix}", cred.username),
        None => cred.username.clone(),
    };
    if let Err(e) = authenticate_user(io, &user, &cred.password, deadline).await {
        return Err(untrusted_err(e, trust, device, store).await);
    }
    tracing::debug!(device = %device.hostname, user = %cred.username, "authenticated");
    Ok(trust)
}

/// Logs in and prepares the shell.
async fn open_shell(
    platform: Arc<Platform>,
    options: &SshOptions,
    device: &Device,
    cred: &Credential,
    store: &Arc<dyn HostKeyStore>,
    deadline: Instant,
) -> Result<Shell> {
    // The engine scales the deadline it gives; the driver scales its own short waits.
    let multiplier = device
        .timeout_multiplier
        .or(platform.spec.timeout_multiplier)
        .filter(|m| m.is_finite())
        .unwrap_or(1.0)
        .clamp(0.1, 100.0);
    // Exec channels only over SSH; the shell is opened later only if the device refuses them.
    let exec = device.transport == Transport::Ssh && platform.spec.exec_channel;
    let (link, trust) = match device.transport {
        Transport::Ssh => {
            ssh_link(&platform, options, device, cred, store, deadline, !exec).await?
        }
        Transport::Telnet => {
            if device.jump_host.is_some() {
                return Err(Error::invalid(
                    "a telnet device cannot be reached through a jump host (set transport ssh)",
                ));
            }
            // Opted in by the device: never reached here after an SSH failure.
            let tcp = tcp_connect_async(&device.address, device.port, deadline).await?;
            let conn = TelnetConn::new(tcp).map_err(|e| map_io(e, "registering the socket"))?;
            (Link::Telnet(conn), HostTrust::Unverified)
        }
    };
    let limits = ReaderLimits {
        max_output_bytes: options.max_output_bytes,
        max_line_bytes: options.max_line_bytes,
    };
    let mut reader = ShellReader::new(platform.prompt.clone(), platform.pager.clone());
    reader.set_limits(limits);
    let mut shell = Shell {
        link,
        reader,
        platform,
        buf: vec![0u8; options.read_buffer.max(1024)],
        hostname: device.hostname.clone(),
        limits,
        learn_after: options.prompt_learn_after.mul_f64(multiplier),
        quiet: options.prompt_quiet.mul_f64(multiplier),
        notes: Vec::new(),
        exec: None,
        pty: (options.pty_width, options.pty_height),
    };
    if exec {
        tracing::debug!(device = %device.hostname, "logged in; commands run over exec channels");
        shell.exec = Some(cred.clone());
        return Ok(shell);
    }
    let ready = async {
        if device.transport == Transport::Telnet {
            shell.telnet_login(cred, deadline).await?;
        }
        shell.prepare(cred, deadline).await
    };
    // Errors of a device not yet trusted are marked (only authentication errors change).
    if let Err(e) = ready.await {
        return Err(untrusted_err(e, trust, device, store).await);
    }
    Ok(shell)
}

impl Shell {
    /// Readies a freshly opened shell for commands: finds (or learns) the prompt, enters
    /// enable mode, turns paging off. The caller marks errors of a device not yet trusted
    /// (paging-off commands never fail with `auth`).
    async fn prepare(&mut self, cred: &Credential, deadline: Instant) -> Result<()> {
        let shell = self;
        let prompt = match shell.find_prompt(cred, deadline).await? {
            FirstPrompt::Matched(prompt) => {
                shell.reader.set_base(Some(shell.platform.base_of(&prompt)));
                shell
                    .reader
                    .set_base_pattern(shell.platform.prompt_base.clone());
                prompt
            }
            FirstPrompt::Learned(prompt, base) => {
                shell.reader.set_base(Some(base));
                shell.reader.set_base_pattern(None);
                // Device output: through the platform's secret rules before it is logged.
                let shown = shell.platform.rules.redact(&prompt);
                tracing::info!(device = %shell.hostname, platform = %shell.platform.name(), prompt = ?shown, "prompt learned from the session");
                shell.notes.push(format!(
                "the prompt matched none of platform '{}''s patterns; learned {shown:?} from the \
                 session and used it",
                shell.platform.name()
            ));
                prompt
            }
        };
        let prompt = shell.enable(&prompt, cred, deadline).await?;
        // The prompt itself is device output: not logged.
        tracing::debug!(device = %shell.hostname, prompt_len = prompt.len(), "logged in");
        let paging = shell.platform.spec.paging_off.clone();
        for cmd in &paging {
            if let Err(e) = shell.command(cmd, deadline).await {
                if e.kind() != ErrorKind::Command {
                    return Err(e);
                }
                tracing::debug!(device = %shell.hostname, command = %cmd, "paging-off command rejected");
            }
        }
        Ok(())
    }
}

/// The legacy algorithms `legacy_ssh` asks for that this libssh2 build lacks (empty when built
/// with the CFLAGS of this workspace's `.cargo/config.toml`).
pub fn legacy_algorithms_missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (t, list) in [
        (ssh2::MethodType::Kex, LEGACY_KEX),
        (ssh2::MethodType::HostKey, LEGACY_HOSTKEY),
        (ssh2::MethodType::CryptCs, LEGACY_CIPHERS),
        (ssh2::MethodType::MacCs, LEGACY_MACS),
    ] {
        let have = supported_of(t, list);
        missing.extend(list.split(',').filter(|a| !have.contains(a)));
    }
    missing
}

/// The names of `list` this libssh2 build implements.
fn supported_of(t: ssh2::MethodType, list: &'static str) -> Vec<&'static str> {
    let Ok(sess) = ssh2::Session::new() else {
        return Vec::new();
    };
    let supported = sess.supported_algs(t).unwrap_or_default();
    list.split(',').filter(|a| supported.contains(a)).collect()
}

/// Sets the algorithm preferences: modern only, plus the legacy ones when the device opts in.
///
/// Host key, cipher and MAC lists are explicit for every session: a libssh2 built with the SHA-1
/// defines would otherwise offer ssh-rsa, CBC and hmac-sha1 to every device by default.
///
/// Key exchange keeps libssh2's default list (modern first: ML-KEM hybrids when OpenSSL has
/// ML-KEM, curve25519, ECDH,
/// group-exchange-sha256, group16/18-sha512, group14-sha256; then, in this build, the SHA-1
/// methods; then the `ext-info-c` / `kex-strict-c-v00@openssh.com` markers), and
/// [`check_kex`] refuses a SHA-1 result right after the handshake, before the host key is
/// pinned or any credential is sent. An explicit list is not an option:
/// `libssh2_session_method_pref(KEX, ..)` always *prepends* `ext-info-c,kex-strict-c-v00@openssh.com`
/// to it, and a russh server (russh 0.54's default server preferences list the client-side
/// markers `ext-info-c` and `kex-strict-c-v00@openssh.com` too, and its server side picks the
/// first name of the client's list it knows) then "agrees" on `ext-info-c` as the key exchange
/// while libssh2 runs curve25519: every handshake fails with "Unable to exchange encryption
/// keys". OpenSSH and real devices do not list client-side markers, but a client that works
/// against any server is worth more than the difference, which only matters for what is
/// *offered*: a modern device picks the first algorithm of the client's list it supports
/// (RFC 4253 7.1), which is always a modern one when it has one.
pub(crate) fn set_algorithms(sess: &ssh2::Session, legacy: bool) -> Result<()> {
    let join = |modern: &str, old: &str| {
        if legacy {
            format!("{modern},{old}")
        } else {
            modern.to_string()
        }
    };
    let hostkey = join(MODERN_HOSTKEY, LEGACY_HOSTKEY);
    let ciphers = join(MODERN_CIPHERS, LEGACY_CIPHERS);
    let macs = join(MODERN_MACS, LEGACY_MACS);
    // libssh2 drops names it does not implement and fails only when nothing is left.
    for (t, list) in [
        (ssh2::MethodType::HostKey, &hostkey),
        (ssh2::MethodType::CryptCs, &ciphers),
        (ssh2::MethodType::CryptSc, &ciphers),
        (ssh2::MethodType::MacCs, &macs),
        (ssh2::MethodType::MacSc, &macs),
    ] {
        sess.method_pref(t, list)
            .map_err(|e| map_ssh(e, "setting algorithm preferences"))?;
    }
    Ok(())
}

/// Refuses a SHA-1 key exchange unless the device opted in with `legacy_ssh`. Runs right after
/// the handshake: nothing has been pinned or sent yet.
fn check_kex(sess: &ssh2::Session, device: &Device) -> Result<()> {
    check_kex_of(sess, &device.address, device.port, device.legacy_ssh)
}

/// [`check_kex`] for any server (a device or a jump host).
pub(crate) fn check_kex_of(
    sess: &ssh2::Session,
    address: &str,
    port: u16,
    legacy: bool,
) -> Result<()> {
    let kex = sess.methods(ssh2::MethodType::Kex).unwrap_or("");
    if !legacy && LEGACY_KEX.split(',').any(|k| k == kex) {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "SSH handshake: {address}:{port} offers only legacy key exchange ({kex}); set legacy_ssh on the device to allow SHA-1 key exchange, ssh-rsa, CBC ciphers and hmac-sha1"
            ),
        ));
    }
    Ok(())
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(format!("jump host thread failed: {e}"))
}

#[async_trait]
impl Driver for SshDriver {
    fn platform(&self) -> &str {
        self.platform.name()
    }

    fn rules(&self) -> &Rules {
        &self.platform.rules
    }

    async fn connect(
        &self,
        device: &Device,
        credential: &Credential,
        timeout: Duration,
    ) -> Result<Box<dyn Session>> {
        let deadline = Instant::now() + timeout;
        let mut shell = open_shell(
            self.platform.clone(),
            &self.options,
            device,
            credential,
            &self.host_keys,
            deadline,
        )
        .await
        .map_err(|e| e.context(&device.hostname))?;
        let notes = std::mem::take(&mut shell.notes);
        Ok(Box::new(SshSession {
            shell: Some(Box::new(shell)),
            hostname: device.hostname.clone(),
            notes,
        }))
    }

    async fn probe(&self, device: &Device, timeout: Duration) -> Result<Duration> {
        probe_ssh(device, timeout).await
    }

    fn timeout_multiplier(&self) -> f64 {
        self.platform.spec.timeout_multiplier.unwrap_or(1.0)
    }

    fn change_author(&self, raw: &str) -> Option<String> {
        self.platform.change_author_of(raw)
    }
}

/// Checks that `device` answers on its SSH port: TCP connect and an `SSH-` banner within
/// `timeout`. Returns the time it took.
pub async fn probe_ssh(device: &Device, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let addr = format!("{}:{}", device.address, device.port);
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| map_io(e, &format!("connecting to {addr}")))?;
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        use tokio::io::AsyncReadExt;
        loop {
            let n = s
                .read(&mut buf)
                .await
                .map_err(|e| map_io(e, "reading the SSH banner"))?;
            if n == 0 {
                return Err(conn_err(format!("{addr} closed without an SSH banner")));
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&got[..i]);
                if line.contains("SSH-") {
                    return Ok(());
                }
                got.drain(..=i);
            }
            if got.len() > 8192 {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("{addr} did not send an SSH banner"),
                ));
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Error::timeout(format!("no SSH banner from {addr} within {timeout:?}")))??;
    Ok(start.elapsed())
}

/// A logged-in SSH (or telnet) session (see the module docs for how it is driven).
pub struct SshSession {
    shell: Option<Box<Shell>>,
    hostname: String,
    notes: Vec<String>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("hostname", &self.hostname)
            .field("open", &self.shell.is_some())
            .finish()
    }
}

impl SshSession {
    /// Takes the shell for one call; gives it back only if the call succeeded.
    fn take(&mut self) -> Result<Box<Shell>> {
        self.shell.take().ok_or_else(|| {
            conn_err(format!(
                "{}: session is closed (an earlier call failed or was cancelled)",
                self.hostname
            ))
        })
    }

    /// Keeps the shell after a call, or closes it: a session whose call failed is in an
    /// unknown state. (A call cancelled half-way drops the shell, which closes it.)
    fn settle<T>(&mut self, mut shell: Box<Shell>, res: Result<T>) -> Result<T> {
        self.notes.append(&mut shell.notes);
        if res.is_ok() {
            self.shell = Some(shell);
        } else {
            shell.close();
        }
        res.map_err(|e| e.context(&self.hostname))
    }
}

#[async_trait]
impl Session for SshSession {
    async fn run_command(&mut self, command: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut shell = self.take()?;
        let res = shell.run(command, deadline).await;
        self.settle(shell, res)
    }

    async fn fetch_config(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut shell = self.take()?;
        let res = shell.fetch_config(deadline).await;
        self.settle(shell, res)
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        if let Some(shell) = self.shell.take() {
            shell.close();
        }
        Ok(())
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        if let Some(shell) = self.shell.take() {
            // Never waits on the device: one non-blocking goodbye, then the socket is shut.
            shell.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_openssh_style() {
        assert_eq!(b64_nopad(b""), "");
        assert_eq!(b64_nopad(b"f"), "Zg");
        assert_eq!(b64_nopad(b"fo"), "Zm8");
        assert_eq!(b64_nopad(b"foo"), "Zm9v");
        assert_eq!(b64_nopad(b"foobar"), "Zm9vYmFy");
    }
}
