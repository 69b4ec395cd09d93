//! Jump hosts: reaching a device through one or more SSH bastions.
//!
//! For each bastion of the chain (outermost first) the driver connects (the first over TCP,
//! each next one through the previous one's tunnel), checks the bastion's host key before
//! anything secret is sent (an admin-set fingerprint must match exactly; else the bastion's
//! host-key policy applies, pinned in the same store as devices' keys, keyed by its address and
//! port), logs in with the bastion's own secret, and opens a `direct-tcpip` channel to the next
//! hop. libssh2 runs a session over a socket, not over another session's channel, so each
//! channel is joined to one end of a Unix socket pair by a small pump thread, and the next
//! session (the next bastion's, or the device's) runs over the other end.

use crate::ssh::{HostTrust, SshIo, authenticate_user, check_host_key, map_io, map_ssh, remaining};
use netraven_core::error::{Error, ErrorKind, Result};
use netraven_core::model::{Device, HostKeyPolicy, JumpHost, MAX_JUMP_CHAIN};
use netraven_core::store::{HostKeyStore, JumpHostStore};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// A byte stream an SSH session runs over: a TCP connection, or the inner end of a tunnel.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// A second handle on the same socket (to shut it down while a session owns the first).
    pub(crate) fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Puts the socket in non-blocking mode (for a session driven from the async runtime).
    pub(crate) fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }

    /// Shuts both directions down: every blocked read or write on the socket ends.
    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// The bastion sessions a device session is tunnelled through. Dropping it stops the pumps and
/// closes the bastion sessions (innermost first).
#[derive(Debug, Default)]
pub(crate) struct Tunnel {
    hops: Vec<Hop>,
}

#[derive(Debug)]
struct Hop {
    stop: Arc<AtomicBool>,
    /// A handle on the pump's end of the socket pair.
    end: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        for hop in self.hops.iter_mut().rev() {
            hop.stop.store(true, Ordering::SeqCst);
            let _ = hop.end.shutdown(Shutdown::Both);
            if let Some(t) = hop.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The chain of jump hosts in front of a device, outermost first: the device's `jump_host`,
/// then each one's `via`. Unknown names, cycles and chains longer than [`MAX_JUMP_CHAIN`] are
/// refused.
pub(crate) fn resolve_chain(
    device: &Device,
    store: Option<&Arc<dyn JumpHostStore>>,
    rt: &tokio::runtime::Handle,
) -> Result<Vec<JumpHost>> {
    let Some(first) = device.jump_host.as_deref() else {
        return Ok(Vec::new());
    };
    let store = store.ok_or_else(|| {
        Error::invalid(format!(
            "device '{}' names jump host '{first}', but this driver has no jump host store",
            device.hostname
        ))
    })?;
    let mut chain: Vec<JumpHost> = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(name) = next {
        if chain.iter().any(|j| j.name == name) {
            return Err(Error::invalid(format!(
                "jump host '{name}' is part of a loop of jump hosts (via)"
            )));
        }
        if chain.len() >= MAX_JUMP_CHAIN {
            return Err(Error::invalid(format!(
                "more than {MAX_JUMP_CHAIN} jump hosts in front of device '{}'",
                device.hostname
            )));
        }
        let j = rt
            .block_on(store.jump_host_by_name(&name))?
            .ok_or_else(|| Error::invalid(format!("jump host '{name}' does not exist")))?;
        next = j.via.clone();
        chain.push(j);
    }
    chain.reverse();
    Ok(chain)
}

/// Opens a stream to `device` through `chain` (outermost first, not empty), within the
/// deadline. Runs on a blocking thread.
pub(crate) fn connect_through(
    chain: &[JumpHost],
    device: &Device,
    host_keys: &Arc<dyn HostKeyStore>,
    rt: &tokio::runtime::Handle,
    deadline: Instant,
) -> Result<(Stream, Option<Tunnel>)> {
    let Some(first) = chain.first() else {
        return Err(Error::internal(format!(
            "no jump host in front of device '{}' to connect through",
            device.hostname
        )));
    };
    // The bastion sessions are blocking (this runs on a blocking thread).
    let tcp = rt.block_on(crate::ssh::tcp_connect_async(
        &first.address,
        first.port,
        deadline,
    ))?;
    tcp.set_nonblocking(false)
        .map_err(|e| map_io(e, "making the socket blocking"))?;
    let mut stream = Stream::Tcp(tcp);
    let mut tunnel = Tunnel::default();
    for (i, jump) in chain.iter().enumerate() {
        let (host, port) = match chain.get(i + 1) {
            Some(next) => (next.address.as_str(), next.port),
            None => (device.address.as_str(), device.port),
        };
        let hop = bastion_hop(jump, stream, host, port, host_keys, rt, deadline)
            .map_err(|e| e.context(format!("jump host '{}'", jump.name)))?;
        let (pump_end, inner) = hop;
        stream = Stream::Unix(inner);
        tunnel.hops.push(pump_end);
    }
    Ok((stream, Some(tunnel)))
}

/// Logs in to one bastion over `stream` and opens a `direct-tcpip` channel to `host:port`;
/// returns the running pump and the socket the next session runs over.
fn bastion_hop(
    jump: &JumpHost,
    stream: Stream,
    host: &str,
    port: u16,
    host_keys: &Arc<dyn HostKeyStore>,
    rt: &tokio::runtime::Handle,
    deadline: Instant,
) -> Result<(Hop, UnixStream)> {
    let sock = stream
        .try_clone()
        .map_err(|e| map_io(e, "duplicating the socket"))?;
    let mut sess = ssh2::Session::new().map_err(|e| map_ssh(e, "creating the SSH session"))?;
    sess.set_timeout(crate::ssh::ms(remaining(
        deadline,
        "handshaking with a jump host",
    )?));
    crate::ssh::set_algorithms(&sess, false)?;
    sess.set_tcp_stream(stream);
    let fail = |e: Error| {
        sock.shutdown();
        e
    };
    sess.handshake()
        .map_err(|e| map_ssh(e, "SSH handshake"))
        .map_err(fail)?;
    crate::ssh::check_kex_of(&sess, &jump.address, jump.port, false).map_err(fail)?;
    // The bastion's key is checked before its password is sent.
    let trust = check_bastion_key(&sess, jump, host_keys, rt).map_err(fail)?;
    sess.set_timeout(crate::ssh::ms(remaining(
        deadline,
        "logging in to a jump host",
    )?));
    // A blocking session: the shared (async) login code runs each libssh2 call once, here on
    // this blocking thread.
    let io = SshIo::blocking(sess.clone());
    let login = authenticate_user(&io, &jump.username, &jump.password, deadline);
    if let Err(e) = rt.block_on(login) {
        if trust == HostTrust::FirstUse {
            let _ = rt.block_on(host_keys.delete_host_key(&jump.address, jump.port));
        }
        // Not the device's credential that was refused: the engine must not try the next one.
        let kind = if e.kind() == ErrorKind::Auth {
            ErrorKind::Protocol
        } else {
            e.kind()
        };
        return Err(fail(Error::new(
            kind,
            format!(
                "{}:{} refused the login of '{}': {}",
                jump.address,
                jump.port,
                jump.username,
                e.message()
            ),
        )));
    }
    tracing::debug!(jump_host = %jump.name, target_port = port, "logged in to the jump host");
    sess.set_timeout(crate::ssh::ms(remaining(deadline, "opening a tunnel")?));
    let chan = sess
        .channel_direct_tcpip(host, port, None)
        .map_err(|e| {
            map_ssh(
                e,
                &format!("opening a direct-tcpip channel to {host}:{port}"),
            )
        })
        .map_err(fail)?;
    let (outer, inner) = UnixStream::pair().map_err(|e| map_io(e, "creating a socket pair"))?;
    let end = outer
        .try_clone()
        .map_err(|e| map_io(e, "duplicating the socket"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let name = jump.name.clone();
    let thread = std::thread::Builder::new()
        .name("netraven-jump".into())
        .spawn(move || pump(sess, chan, sock, outer, stop2, &name))
        .map_err(|e| Error::internal(format!("starting a tunnel thread: {e}")))?;
    Ok((
        Hop {
            stop,
            end,
            thread: Some(thread),
        },
        inner,
    ))
}

/// The bastion's host key: an admin-set fingerprint must match exactly; else its policy
/// (trust on first use, strict, off) over the host-key store, as for a device.
fn check_bastion_key(
    sess: &ssh2::Session,
    jump: &JumpHost,
    host_keys: &Arc<dyn HostKeyStore>,
    rt: &tokio::runtime::Handle,
) -> Result<HostTrust> {
    if let Some(want) = &jump.host_key {
        let offered = crate::ssh::fingerprint(sess)?;
        if &offered != want {
            tracing::warn!(jump_host = %jump.name, pinned = %want, %offered, "jump host key mismatch");
            return Err(Error::new(
                ErrorKind::HostKey,
                format!(
                    "host key of jump host {}:{} is not the one configured: expected {want}, \
                     offered {offered}; refusing to log in",
                    jump.address, jump.port
                ),
            ));
        }
        return Ok(HostTrust::Known);
    }
    let mut as_device = Device::new(&jump.name, &jump.address, "jump_host").with_port(jump.port);
    as_device.host_key_policy = jump.host_key_policy;
    if jump.host_key_policy == HostKeyPolicy::Off {
        return Ok(HostTrust::Unverified);
    }
    rt.block_on(check_host_key(sess, &as_device, host_keys))
}

/// Copies bytes between the channel and the socket until either side ends or `stop` is set.
/// The session is non-blocking here; `poll` waits on the session's socket and ours.
fn pump(
    sess: ssh2::Session,
    mut chan: ssh2::Channel,
    sess_sock: Stream,
    local: UnixStream,
    stop: Arc<AtomicBool>,
    name: &str,
) {
    sess.set_blocking(false);
    let _ = local.set_nonblocking(true);
    let mut to_local: Vec<u8> = Vec::new();
    let mut to_chan: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut local_rd = &local;
    let mut local_wr = &local;
    let mut reason = "closed";
    'outer: while !stop.load(Ordering::SeqCst) {
        let mut progress = false;
        // Channel → socket: read until libssh2 has nothing buffered.
        while to_local.len() < 256 * 1024 {
            match chan.read(&mut buf) {
                Ok(0) => {
                    if chan.eof() {
                        reason = "the far end closed";
                        break 'outer;
                    }
                    break;
                }
                Ok(n) => {
                    to_local.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    reason = "channel error";
                    break 'outer;
                }
            }
        }
        if !to_local.is_empty() {
            match local_wr.write(&to_local) {
                Ok(n) => {
                    to_local.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        // Socket → channel.
        if to_chan.is_empty() {
            match local_rd.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    to_chan.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !to_chan.is_empty() {
            match chan.write(&to_chan) {
                Ok(n) => {
                    to_chan.drain(..n);
                    progress = n > 0 || progress;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    reason = "channel error";
                    break;
                }
            }
        }
        if !progress {
            let out = matches!(
                sess.block_directions(),
                ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
            ) || !to_chan.is_empty();
            let mut fds = [
                libc::pollfd {
                    fd: sess_sock.as_raw_fd(),
                    events: libc::POLLIN | if out { libc::POLLOUT } else { 0 },
                    revents: 0,
                },
                libc::pollfd {
                    fd: local.as_raw_fd(),
                    events: (if to_chan.is_empty() { libc::POLLIN } else { 0 })
                        | if to_local.is_empty() {
                            0
                        } else {
                            libc::POLLOUT
                        },
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two initialised pollfd structs that outlives
            // the call, and its length is passed with it.
            unsafe {
                libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50);
            }
        }
    }
    tracing::debug!(jump_host = %name, %reason, "tunnel closed");
    let _ = local.shutdown(Shutdown::Both);
    // Closing must not wait on the bastion (see the shell's drop in ssh.rs): shut its socket
    // down first, then let libssh2 free the channel and session.
    let _ = sess.disconnect(None, "bye", None);
    sess_sock.shutdown();
    sess.set_timeout(1000);
    sess.set_blocking(true);
    drop(chan);
    drop(sess);
}
