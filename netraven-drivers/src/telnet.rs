//! A minimal telnet (RFC 854) for legacy devices that speak nothing else: option negotiation
//! that refuses every option but suppress-go-ahead and the server's echo (what real devices
//! expect), the byte-stuffing of `IAC`, and the connection the driver's shell runs
//! over ([`TelnetConn`]). The login dialogue (`Username:`/`login:`, `Password:`) is the
//! driver's (see `ssh.rs`); the simulator's server side uses the same [`Decoder`].
//!
//! Telnet sends everything, the password included, in clear text: a device uses it only when
//! it says so (`transport = "telnet"`), never as a fallback after an SSH failure.

use std::net::TcpStream;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Interpret as command.
pub const IAC: u8 = 255;
/// Refusal to perform, or continue performing, an option (sender side).
pub const DONT: u8 = 254;
/// Request that the other side perform an option.
pub const DO: u8 = 253;
/// Refusal to perform an option.
pub const WONT: u8 = 252;
/// Offer (or confirmation) to perform an option.
pub const WILL: u8 = 251;
/// Subnegotiation begin.
pub const SB: u8 = 250;
/// Subnegotiation end.
pub const SE: u8 = 240;
/// Option: echo (RFC 857).
pub const OPT_ECHO: u8 = 1;
/// Option: suppress go-ahead (RFC 858).
pub const OPT_SGA: u8 = 3;
/// Option: terminal type (RFC 1091).
pub const OPT_TTYPE: u8 = 24;
/// Option: window size (RFC 1073).
pub const OPT_NAWS: u8 = 31;

/// A negotiation command received from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `IAC DO opt`.
    Do(u8),
    /// `IAC DONT opt`.
    Dont(u8),
    /// `IAC WILL opt`.
    Will(u8),
    /// `IAC WONT opt`.
    Wont(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
    Cr,
}

/// Splits a received byte stream into data and negotiation commands. Stateful across chunks (a
/// command may be cut between two reads). `IAC IAC` is a data byte 255; subnegotiations are
/// skipped; `CR NUL` is a bare CR.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the data bytes of `input` to `data` and the commands to `commands`.
    pub fn feed(&mut self, input: &[u8], data: &mut Vec<u8>, commands: &mut Vec<Command>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Iac,
                (State::Data, b'\r') => {
                    data.push(b'\r');
                    State::Cr
                }
                (State::Data, b) => {
                    data.push(b);
                    State::Data
                }
                (State::Cr, 0) => State::Data,
                (State::Cr, IAC) => State::Iac,
                (State::Cr, b) => {
                    data.push(b);
                    if b == b'\r' { State::Cr } else { State::Data }
                }
                (State::Iac, IAC) => {
                    data.push(IAC);
                    State::Data
                }
                (State::Iac, DO | DONT | WILL | WONT) => State::Verb(b),
                (State::Iac, SB) => State::Sub,
                // NOP, GA, AYT and the other two-byte commands carry nothing for us.
                (State::Iac, _) => State::Data,
                (State::Verb(v), opt) => {
                    commands.push(match v {
                        DO => Command::Do(opt),
                        DONT => Command::Dont(opt),
                        WILL => Command::Will(opt),
                        _ => Command::Wont(opt),
                    });
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
    }
}

/// Doubles every `IAC` byte of outgoing data.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// The client's side of option negotiation: it agrees to suppress-go-ahead in both directions
/// and to the server echoing, and refuses everything else (terminal type, window size,
/// linemode, …), answering each request at most once so two peers never loop.
#[derive(Debug, Default)]
pub struct ClientOptions {
    /// Options the server performs with our agreement.
    remote: Vec<u8>,
    /// Options we perform.
    local: Vec<u8>,
    /// Options we refused already (by verb), not refused again.
    refused: Vec<(u8, u8)>,
}

impl ClientOptions {
    /// Negotiation state at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer to one command (empty when none is due).
    pub fn answer(&mut self, cmd: Command) -> Vec<u8> {
        match cmd {
            Command::Will(o) if matches!(o, OPT_ECHO | OPT_SGA) => {
                if self.remote.contains(&o) {
                    Vec::new()
                } else {
                    self.remote.push(o);
                    vec![IAC, DO, o]
                }
            }
            Command::Will(o) => self.refuse(DONT, o),
            Command::Wont(o) => match self.remote.iter().position(|x| *x == o) {
                Some(i) => {
                    self.remote.remove(i);
                    vec![IAC, DONT, o]
                }
                None => Vec::new(),
            },
            Command::Do(o) if o == OPT_SGA => {
                if self.local.contains(&o) {
                    Vec::new()
                } else {
                    self.local.push(o);
                    vec![IAC, WILL, o]
                }
            }
            Command::Do(o) => self.refuse(WONT, o),
            Command::Dont(o) => match self.local.iter().position(|x| *x == o) {
                Some(i) => {
                    self.local.remove(i);
                    vec![IAC, WONT, o]
                }
                None => Vec::new(),
            },
        }
    }

    fn refuse(&mut self, verb: u8, opt: u8) -> Vec<u8> {
        if self.refused.contains(&(verb, opt)) {
            return Vec::new();
        }
        self.refused.push((verb, opt));
        vec![IAC, verb, opt]
    }
}

/// A telnet connection to a device, driven from the async runtime: reads give data only
/// (negotiation is answered on the way), writes are escaped and turn `\n` into the network line
/// end `\r\n`.
#[derive(Debug)]
pub struct TelnetConn {
    stream: tokio::net::TcpStream,
    decoder: Decoder,
    options: ClientOptions,
    data: Vec<u8>,
    commands: Vec<Command>,
    raw: Vec<u8>,
}

/// The error of a read or write that did not finish by its deadline.
fn timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "telnet read or write timed out",
    )
}

impl TelnetConn {
    /// Wraps a connected stream (made non-blocking and registered with the runtime: call it
    /// within one).
    pub fn new(stream: TcpStream) -> std::io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(TelnetConn {
            stream: tokio::net::TcpStream::from_std(stream)?,
            decoder: Decoder::new(),
            options: ClientOptions::new(),
            data: Vec::new(),
            commands: Vec::new(),
            raw: vec![0u8; 16 * 1024],
        })
    }

    /// `text` as it goes on the wire: escaped, `\n` as `\r\n`.
    fn encode(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 8);
        for &b in text {
            match b {
                b'\n' => out.extend_from_slice(b"\r\n"),
                IAC => out.extend_from_slice(&[IAC, IAC]),
                b => out.push(b),
            }
        }
        out
    }

    /// Sends `text` by `deadline` (escaped; `\n` sent as `\r\n`).
    pub async fn send(&mut self, text: &[u8], deadline: Instant) -> std::io::Result<()> {
        let out = Self::encode(text);
        tokio::time::timeout_at(deadline.into(), self.stream.write_all(&out))
            .await
            .map_err(|_| timed_out())?
    }

    /// Sends `text` if the socket takes it at once; never waits (a goodbye).
    pub fn try_send(&mut self, text: &[u8]) {
        let _ = self.stream.try_write(&Self::encode(text));
    }

    /// Reads data into `buf` by `deadline`, answering negotiation on the way. `Ok(0)` is the
    /// end of the connection; a timeout is an error of kind `TimedOut`.
    pub async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> std::io::Result<usize> {
        loop {
            if !self.data.is_empty() {
                let n = buf.len().min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data.drain(..n);
                return Ok(n);
            }
            let n = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut self.raw))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Ok(0);
            }
            self.decoder
                .feed(&self.raw[..n], &mut self.data, &mut self.commands);
            let mut reply = Vec::new();
            for c in self.commands.drain(..) {
                reply.extend(self.options.answer(c));
            }
            if !reply.is_empty() {
                tokio::time::timeout_at(deadline.into(), self.stream.write_all(&reply))
                    .await
                    .map_err(|_| timed_out())??;
            }
        }
    }

    /// Closes the connection at once.
    pub fn shutdown(&self) {
        let fd = std::os::fd::AsFd::as_fd(&self.stream);
        let _ = socket_shutdown(fd);
    }
}

/// Shuts a socket down in both directions through a second handle on it (the runtime's
/// stream has no synchronous shutdown).
fn socket_shutdown(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    let owned = fd.try_clone_to_owned()?;
    let s = TcpStream::from(owned);
    s.shutdown(std::net::Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> (Vec<u8>, Vec<Command>) {
        let mut d = Decoder::new();
        let (mut data, mut cmds) = (Vec::new(), Vec::new());
        for c in chunks {
            d.feed(c, &mut data, &mut cmds);
        }
        (data, cmds)
    }

    #[test]
    fn commands_are_split_from_data_even_across_chunks() {
        let (data, cmds) = decode(&[
            &[IAC, WILL, OPT_ECHO, b'a', IAC],
            &[IAC, b'b', IAC, DO],
            &[
                OPT_NAWS, b'\r', 0, b'c', IAC, SB, OPT_TTYPE, 1, IAC, SE, b'\r', b'\n',
            ],
        ]);
        assert_eq!(data, vec![b'a', IAC, b'b', b'\r', b'c', b'\r', b'\n']);
        assert_eq!(cmds, vec![Command::Will(OPT_ECHO), Command::Do(OPT_NAWS)]);
    }

    #[test]
    fn the_client_accepts_only_echo_and_sga_and_never_loops() {
        let mut o = ClientOptions::new();
        assert_eq!(o.answer(Command::Will(OPT_ECHO)), vec![IAC, DO, OPT_ECHO]);
        assert_eq!(o.answer(Command::Will(OPT_ECHO)), Vec::<u8>::new());
        assert_eq!(o.answer(Command::Will(OPT_SGA)), vec![IAC, DO, OPT_SGA]);
        assert_eq!(o.answer(Command::Do(OPT_SGA)), vec![IAC, WILL, OPT_SGA]);
        assert_eq!(o.answer(Command::Do(OPT_NAWS)), vec![IAC, WONT, OPT_NAWS]);
        assert_eq!(o.answer(Command::Do(OPT_NAWS)), Vec::<u8>::new());
        assert_eq!(o.answer(Command::Do(OPT_TTYPE)), vec![IAC, WONT, OPT_TTYPE]);
        assert_eq!(o.answer(Command::Will(34)), vec![IAC, DONT, 34]);
        assert_eq!(o.answer(Command::Wont(OPT_ECHO)), vec![IAC, DONT, OPT_ECHO]);
        assert_eq!(o.answer(Command::Wont(OPT_ECHO)), Vec::<u8>::new());
        assert_eq!(o.answer(Command::Dont(OPT_SGA)), vec![IAC, WONT, OPT_SGA]);
        assert_eq!(o.answer(Command::Dont(OPT_NAWS)), Vec::<u8>::new());
    }

    #[test]
    fn iac_is_doubled_on_the_way_out() {
        assert_eq!(escape(&[1, IAC, 2]), vec![1, IAC, IAC, 2]);
    }
}
