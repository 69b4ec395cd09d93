//! The simulator's telnet server (`netraven sim --telnet`): option negotiation as a Cisco box
//! does it (it offers to echo and suppress go-ahead, asks for the window size and terminal type,
//! which the client may refuse), a `Username:`/`Password:` login (`login:` for Linux-like
//! platforms), then the same shell as over SSH.

use super::SimDevice;
use super::shell::{Out, Terminal};
use crate::telnet::{Command, DO, Decoder, IAC, OPT_ECHO, OPT_NAWS, OPT_SGA, OPT_TTYPE, WILL};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

/// Accepts telnet connections for one device.
pub(crate) async fn serve(listener: tokio::net::TcpListener, dev: Arc<SimDevice>) {
    super::accept_loop(listener, move |stream| {
        let dev = dev.clone();
        async move {
            let (rd, wr) = stream.into_split();
            let wr: Box<dyn AsyncWrite + Send + Unpin> =
                match dev.faults().latency.filter(|l| !l.is_zero()) {
                    Some(l) => Box::new(super::delay::DelayedWriter::new(wr, l)),
                    None => Box::new(wr),
                };
            // An idle client is dropped like the SSH side's inactivity timeout.
            let _ = tokio::time::timeout(Duration::from_secs(600), session(rd, wr, dev)).await;
        }
    })
    .await
}

/// Reads the client's input as lines (data only, negotiation dropped).
struct Input {
    rd: OwnedReadHalf,
    decoder: Decoder,
    data: VecDeque<u8>,
}

impl Input {
    async fn fill(&mut self) -> bool {
        let mut raw = [0u8; 4096];
        let n = match tokio::time::timeout(Duration::from_secs(120), self.rd.read(&mut raw)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        let (mut data, mut cmds) = (Vec::new(), Vec::<Command>::new());
        self.decoder.feed(&raw[..n], &mut data, &mut cmds);
        self.data.extend(data);
        true
    }

    /// One line (without its line end); `None` when the client left.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.data.iter().position(|&b| b == b'\r' || b == b'\n') {
                let line: Vec<u8> = self.data.drain(..i).collect();
                let end = self.data.pop_front();
                if end == Some(b'\r') && self.data.front() == Some(&b'\n') {
                    self.data.pop_front();
                }
                return Some(String::from_utf8_lossy(&line).trim().to_string());
            }
            if self.data.len() > 4096 || !self.fill().await {
                return None;
            }
        }
    }
}

async fn session(
    rd: OwnedReadHalf,
    mut wr: Box<dyn AsyncWrite + Send + Unpin>,
    dev: Arc<SimDevice>,
) {
    let offer = [
        IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, OPT_NAWS, IAC, DO, OPT_TTYPE,
    ];
    let linux = dev.platform.name().contains("linux");
    let ask_user = if linux { "login: " } else { "Username: " };
    let greeting = if linux {
        format!("\r\n{}\r\n{ask_user}", dev.hostname)
    } else {
        format!("\r\n\r\nUser Access Verification\r\n\r\n{ask_user}")
    };
    if wr.write_all(&offer).await.is_err() || wr.write_all(greeting.as_bytes()).await.is_err() {
        return;
    }
    let mut input = Input {
        rd,
        decoder: Decoder::new(),
        data: VecDeque::new(),
    };
    let mut logged_in = false;
    for _ in 0..3 {
        let Some(user) = input.line().await else {
            return;
        };
        if user.is_empty() {
            // A bare newline asks again, as a real box does.
            if wr
                .write_all(format!("\r\n{ask_user}").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        // The server echoes (it said WILL ECHO): the user name, never the password.
        if wr
            .write_all(format!("{user}\r\nPassword: ").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let Some(password) = input.line().await else {
            return;
        };
        if dev.check_login(&user, &password) {
            logged_in = true;
            break;
        }
        let again = if linux {
            format!("\r\nLogin incorrect\r\n{ask_user}")
        } else {
            format!("\r\n% Login invalid\r\n\r\n{ask_user}")
        };
        if wr.write_all(again.as_bytes()).await.is_err() {
            return;
        }
    }
    if !logged_in {
        let _ = wr.shutdown().await;
        return;
    }
    let _ = wr.write_all(b"\r\n").await;
    let (tx, rx) = mpsc::unbounded_channel();
    let term = Terminal::new(dev.clone(), dev.faults(), Out::Telnet(wr));
    let shell = tokio::spawn(term.run(rx));
    // Whatever followed the password already is the shell's.
    if !input.data.is_empty() {
        let rest: Vec<u8> = input.data.drain(..).collect();
        let _ = tx.send(rest);
    }
    while !shell.is_finished() && input.fill().await {
        let chunk: Vec<u8> = input.data.drain(..).collect();
        if !chunk.is_empty() && tx.send(chunk).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = shell.await;
}
