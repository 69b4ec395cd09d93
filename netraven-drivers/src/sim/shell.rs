//! The simulated device's interactive shell: prompt, enable, paging, commands, faults.

use super::output::{Rendered, crlf_to_lf};
use super::render::{Ctx, Mode, command_index, render_command};
use super::{Faults, SimDevice};
use russh::server::Handle;
use russh::{ChannelId, CryptoVec};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Ends the shell (connection dropped, hung or logged out).
struct Stop;

/// Where the shell's output goes: an SSH channel, or a telnet connection.
pub(crate) enum Out {
    Ssh { handle: Handle, channel: ChannelId },
    Telnet(Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
}

impl Out {
    async fn data(&mut self, data: &[u8]) -> Result<(), Stop> {
        match self {
            Out::Ssh { handle, channel } => handle
                .data(*channel, CryptoVec::from_slice(data))
                .await
                .map_err(|_| Stop),
            Out::Telnet(w) => w
                .write_all(&crate::telnet::escape(data))
                .await
                .map_err(|_| Stop),
        }
    }

    /// Ends the session (the client logged out or was refused).
    async fn close(&mut self) {
        match self {
            Out::Ssh { handle, channel } => {
                let _ = handle.eof(*channel).await;
                let _ = handle.close(*channel).await;
            }
            Out::Telnet(w) => {
                let _ = w.shutdown().await;
            }
        }
    }

    /// Sends text on the error stream (exec channels).
    async fn stderr(&mut self, data: &[u8]) -> Result<(), Stop> {
        match self {
            Out::Ssh { handle, channel } => handle
                .extended_data(*channel, 1, CryptoVec::from_slice(data))
                .await
                .map_err(|_| Stop),
            Out::Telnet(_) => self.data(data).await,
        }
    }

    /// Ends an exec channel: its exit status, EOF, close.
    async fn exit(&mut self, status: u32) {
        if let Out::Ssh { handle, channel } = self {
            let _ = handle.exit_status_request(*channel, status).await;
        }
        self.close().await;
    }

    /// Breaks the connection (a simulated fault).
    async fn disconnect(&mut self, reason: russh::Disconnect, text: &str) {
        match self {
            Out::Ssh { handle, .. } => {
                let _ = handle.disconnect(reason, text.into(), String::new()).await;
            }
            Out::Telnet(w) => {
                let _ = w.shutdown().await;
            }
        }
    }
}

pub(crate) struct Terminal {
    dev: Arc<SimDevice>,
    faults: Faults,
    out: Out,
    privileged: bool,
    paging: bool,
    awaiting_enable: bool,
    awaiting_enable_user: bool,
    login_step: usize,
    commands: u64,
    line: Vec<u8>,
    last_cr: bool,
    pending: VecDeque<String>,
    sent: usize,
    rx: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    /// Line ends are sent as `\r\n` (a terminal); exec channels send plain `\n`.
    crlf: bool,
}

impl Terminal {
    pub(crate) fn new(dev: Arc<SimDevice>, faults: Faults, out: Out) -> Self {
        let privileged = dev
            .platform
            .spec
            .sim
            .as_ref()
            .is_none_or(|s| s.unprivileged.is_none());
        Terminal {
            dev,
            faults,
            out,
            privileged,
            paging: true,
            awaiting_enable: false,
            awaiting_enable_user: false,
            login_step: 0,
            commands: 1,
            line: Vec::with_capacity(128),
            last_cr: false,
            pending: VecDeque::new(),
            sent: 0,
            rx: None,
            crlf: true,
        }
    }

    fn prompt(&self) -> String {
        let Some(sim) = self.dev.platform.spec.sim.as_ref() else {
            return "> ".into();
        };
        let mode = if self.privileged {
            sim.privileged.as_str()
        } else {
            sim.unprivileged.as_deref().unwrap_or(&sim.privileged)
        };
        self.dev
            .prompt
            .as_deref()
            .unwrap_or(&sim.prompt)
            .replace("{hostname}", &self.dev.hostname)
            .replace("{user}", &self.dev.accepted.username)
            .replace("{mode}", mode)
            .replace("{count}", &self.commands.to_string())
    }

    fn expand(&self, text: &str) -> String {
        text.replace("{hostname}", &self.dev.hostname)
            .replace("{user}", &self.dev.accepted.username)
    }

    pub(crate) async fn run(mut self, rx: mpsc::UnboundedReceiver<Vec<u8>>) {
        self.rx = Some(rx);
        let banner = self
            .dev
            .platform
            .spec
            .sim
            .as_ref()
            .map(|s| {
                s.banner
                    .replace("{hostname}", &self.dev.hostname)
                    .replace("{user}", &self.dev.accepted.username)
            })
            .unwrap_or_default();
        let first = match self
            .dev
            .platform
            .spec
            .sim
            .as_ref()
            .and_then(|s| s.login.first())
        {
            Some(step) => format!("{banner}\n{}", self.expand(&step.prompt)),
            None => format!("{banner}\n{}", self.prompt()),
        };
        if self.emit(&first).await.is_err() {
            return;
        }
        loop {
            let Some(rx) = self.rx.as_mut() else { return };
            let Some(data) = rx.recv().await else { return };
            for &b in &data {
                if !self.pending.is_empty() {
                    if self.next_page().await.is_err() {
                        return;
                    }
                    continue;
                }
                match b {
                    b'\n' if self.last_cr => self.last_cr = false,
                    b'\r' | b'\n' => {
                        self.last_cr = b == b'\r';
                        let line = std::mem::take(&mut self.line);
                        if self.execute(&line).await.is_err() {
                            return;
                        }
                    }
                    0x08 | 0x7f => {
                        self.last_cr = false;
                        self.line.pop();
                    }
                    _ => {
                        self.last_cr = false;
                        self.line.push(b);
                    }
                }
            }
        }
    }

    /// Runs one command given over an exec channel: no PTY, no echo, no prompt, no paging;
    /// the output, then the exit status (0; an unknown or refused command prints the
    /// platform's error text on stderr and exits 1) and the channel's close. The platform's
    /// `exec_suffix` is accepted after the command. Runs privileged (an account that lands
    /// privileged, as automation accounts do) unless the `exec-unprivileged` fault is set.
    pub(crate) async fn exec(mut self, command: String) {
        self.crlf = false;
        self.paging = false;
        if !self.faults.exec_unprivileged {
            self.privileged = true;
        }
        let dev = self.dev.clone();
        let Some(sim) = dev.platform.spec.sim.as_ref() else {
            self.out.exit(1).await;
            return;
        };
        let suffix = dev.platform.spec.exec_suffix.as_str();
        let mut cmd = command.trim();
        if !suffix.trim().is_empty() {
            cmd = cmd.strip_suffix(suffix.trim()).unwrap_or(cmd).trim_end();
        }
        let tpl = sim.commands.get(cmd).filter(|tpl| {
            !(tpl.contains("{config}") && sim.unprivileged.is_some() && !self.privileged)
        });
        let Some(tpl) = tpl else {
            let text = sim.invalid.clone();
            if self.out.stderr(text.as_bytes()).await.is_ok() {
                self.out.exit(1).await;
            }
            return;
        };
        match self.run_known(cmd, tpl, "").await {
            Ok(Some(out)) => {
                // No terminal on an exec channel: plain line ends.
                if self.emit_bytes(crlf_to_lf(&out)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(Stop) => return,
        }
        self.out.exit(0).await;
    }

    async fn execute(&mut self, raw: &[u8]) -> Result<(), Stop> {
        let cmd = String::from_utf8_lossy(raw).trim().to_string();
        let dev = self.dev.clone();
        let platform = &dev.platform;
        let Some(sim) = platform.spec.sim.as_ref() else {
            return Err(Stop);
        };
        if let Some(step) = sim.login.get(self.login_step) {
            let ok = match step.answer.as_deref() {
                None => true,
                Some("{user}") => cmd == dev.accepted.username,
                Some("{password}") => cmd == dev.accepted.password.expose(),
                Some(lit) => cmd == lit,
            };
            if !ok {
                let _ = self.emit("\nLogin incorrect\n").await;
                self.out.close().await;
                return Err(Stop);
            }
            self.login_step += 1;
            let next = match sim.login.get(self.login_step) {
                Some(s) => self.expand(&s.prompt),
                None => self.prompt(),
            };
            return self.emit(&format!("\n{next}")).await;
        }
        self.commands += 1;
        if self.awaiting_enable_user {
            self.awaiting_enable_user = false;
            if cmd != dev.accepted.username {
                let p = self.prompt();
                return self.emit(&format!("\n% Access denied\n\n{p}")).await;
            }
            self.awaiting_enable = true;
            return self.emit(&format!("{cmd}\n{}", sim.password_prompt)).await;
        }
        if self.awaiting_enable {
            self.awaiting_enable = false;
            // The secret is not echoed.
            if cmd == dev.accepted.enable_secret.expose() {
                self.privileged = true;
                let p = self.prompt();
                return self.emit(&format!("\n{p}")).await;
            }
            let p = self.prompt();
            return self.emit(&format!("\n% Access denied\n\n{p}")).await;
        }
        let echo = format!("{cmd}\n");
        if cmd.is_empty() {
            let p = self.prompt();
            return self.emit(&format!("\n{p}")).await;
        }
        if platform
            .spec
            .enable
            .as_ref()
            .is_some_and(|en| cmd == en.command)
        {
            {
                if self.privileged {
                    let p = self.prompt();
                    return self.emit(&format!("{echo}{p}")).await;
                }
                if !sim.enable_password {
                    self.privileged = true;
                    let p = self.prompt();
                    return self.emit(&format!("{echo}{p}")).await;
                }
                if let Some(u) = &sim.enable_username_prompt {
                    self.awaiting_enable_user = true;
                    return self.emit(&format!("{echo}{u}")).await;
                }
                self.awaiting_enable = true;
                return self.emit(&format!("{echo}{}", sim.password_prompt)).await;
            }
        }
        if platform.spec.paging_off.iter().any(|c| c == &cmd) {
            if !self.faults.ignore_paging_off {
                self.paging = false;
            }
            let p = self.prompt();
            return self.emit(&format!("{echo}{p}")).await;
        }
        if cmd == platform.spec.exit_command || cmd == "logout" || cmd == "quit" {
            let _ = self.emit(&echo).await;
            self.out.close().await;
            return Err(Stop);
        }
        let Some(tpl) = sim.commands.get(&cmd) else {
            let p = self.prompt();
            return self.emit(&format!("{echo}{}{p}", sim.invalid)).await;
        };
        let is_config = tpl.contains("{config}");
        if is_config && sim.unprivileged.is_some() && !self.privileged {
            let p = self.prompt();
            return self.emit(&format!("{echo}{}{p}", sim.invalid)).await;
        }
        let Some(out) = self.run_known(&cmd, tpl, &echo).await? else {
            let p = self.prompt();
            return self.emit(&p).await;
        };
        if !self.paging || sim.page_lines == 0 {
            // The output has its terminal line ends already: one buffer, no conversion.
            let p = self.prompt();
            let mut data = Vec::with_capacity(echo.len() + out.len() + p.len() + 8);
            data.extend_from_slice(echo.replace('\n', "\r\n").as_bytes());
            data.extend_from_slice(&out);
            data.extend_from_slice(p.replace('\n', "\r\n").as_bytes());
            return self.emit_bytes(data).await;
        }
        let out = String::from_utf8_lossy(&crlf_to_lf(&out)).into_owned();
        let mut lines: VecDeque<String> = out.lines().map(|l| format!("{l}\n")).collect();
        let first: String = lines.drain(..sim.page_lines.min(lines.len())).collect();
        self.pending = lines;
        let tail = if self.pending.is_empty() {
            self.prompt()
        } else {
            sim.more.clone()
        };
        self.emit(&format!("{echo}{first}{tail}")).await
    }

    /// Produces a known command's output (`tpl` is its template): the text to send, with
    /// `\r\n` line ends, or `None` when a fault already sent it (a flood; `echo` first). A
    /// garbage fault breaks the session.
    async fn run_known(
        &mut self,
        cmd: &str,
        tpl: &str,
        echo: &str,
    ) -> Result<Option<Vec<u8>>, Stop> {
        let dev = self.dev.clone();
        let platform = &dev.platform;
        let is_config = tpl.contains("{config}");
        let n = dev.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let stamp = format!(
            "{:02}:{:02}:{:02}.{:03} UTC {n}",
            (n / 3600) % 24,
            (n / 60) % 60,
            n % 60,
            n % 1000
        );
        if is_config {
            let f = dev.fetches.fetch_add(1, Ordering::SeqCst);
            let rev = self.faults.change_every.map_or(0, |k| f / k.max(1));
            dev.last_rev.store(rev, Ordering::SeqCst);
        }
        if is_config && let Some(total) = self.faults.garbage {
            self.emit(echo).await?;
            // Every byte value, in an order that never settles into text: NULs, ESC and CSI
            // starts cut short, bytes that are invalid UTF-8. Then the session breaks.
            let mut state = 0x9e37_79b9_u32 ^ dev.index as u32;
            let mut left = total;
            while left > 0 {
                let n = left.min(4096) as usize;
                let chunk: Vec<u8> = (0..n)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        (state >> 24) as u8
                    })
                    .collect();
                self.send(&chunk).await?;
                left -= n as u64;
            }
            self.out
                .disconnect(
                    russh::Disconnect::ProtocolError,
                    "simulated session breakdown",
                )
                .await;
            return Err(Stop);
        }
        if is_config && let Some(total) = self.faults.flood {
            self.emit(echo).await?;
            // Sent in chunks, so the simulator's own memory stays small.
            let mut chunk = [b'x'; 64 * 1024];
            if self.faults.flood_lines {
                for line_end in chunk.iter_mut().skip(99).step_by(100) {
                    *line_end = b'\n';
                }
            }
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                self.send(&chunk[..n]).await?;
                left -= n as u64;
                // russh queues what the client's window does not take yet: pace the flood so
                // the simulator's own memory does not grow with it (about 64 MB/s at most).
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            return Ok(None);
        }
        let ctx = Ctx {
            hostname: &dev.hostname,
            user: &dev.accepted.username,
            device: dev.index,
            rev: dev.last_rev.load(Ordering::SeqCst),
            blocks: dev.blocks,
        };
        let mut out = Vec::new();
        match rendered(&dev, cmd, tpl, &ctx) {
            Some(r) => r.fill(&stamp, &mut out),
            None => out.extend_from_slice(
                render_command(
                    platform,
                    tpl,
                    command_index(platform, cmd),
                    &ctx,
                    &Mode::Raw { stamp: &stamp },
                    None,
                )
                .replace('\n', "\r\n")
                .as_bytes(),
            ),
        }
        Ok(Some(out))
    }

    async fn next_page(&mut self) -> Result<(), Stop> {
        let Some(sim) = self.dev.platform.spec.sim.as_ref() else {
            return Err(Stop);
        };
        let n = sim.page_lines.min(self.pending.len());
        let page: String = self.pending.drain(..n).collect();
        let tail = if self.pending.is_empty() {
            self.prompt()
        } else {
            sim.more.clone()
        };
        let erase = sim.more_erase.clone();
        self.emit(&format!("{erase}{page}{tail}")).await
    }

    /// Sends text (`\n` becomes `\r\n`) with the configured faults applied.
    async fn emit(&mut self, text: &str) -> Result<(), Stop> {
        let data = if self.crlf {
            text.replace('\n', "\r\n").into_bytes()
        } else {
            text.as_bytes().to_vec()
        };
        self.emit_bytes(data).await
    }

    /// Sends bytes as they are (line ends already converted) with the configured faults
    /// applied.
    async fn emit_bytes(&mut self, data: Vec<u8>) -> Result<(), Stop> {
        let needle = self
            .faults
            .hang_in_line
            .as_deref()
            .filter(|n| !n.is_empty());
        let hang_at = needle.and_then(|needle| {
            let at = data
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())?;
            let end = data[at..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .map_or(data.len(), |e| at + e);
            Some(self.sent + end)
        });
        if let Some(k) = self
            .faults
            .hang_after
            .into_iter()
            .chain(hang_at)
            .min()
            .filter(|k| self.sent + data.len() > *k)
        {
            {
                let keep = k.saturating_sub(self.sent);
                self.send(&data[..keep]).await?;
                // Hang: keep the connection open, answer nothing, until the client leaves.
                if let Some(rx) = self.rx.as_mut() {
                    while rx.recv().await.is_some() {}
                }
                return Err(Stop);
            }
        }
        if let Some(k) = self
            .faults
            .drop_after
            .filter(|k| self.sent + data.len() > *k)
        {
            {
                let keep = k.saturating_sub(self.sent);
                self.send(&data[..keep]).await?;
                self.out
                    .disconnect(
                        russh::Disconnect::ConnectionLost,
                        "simulated connection drop",
                    )
                    .await;
                return Err(Stop);
            }
        }
        self.send(&data).await
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), Stop> {
        if data.is_empty() {
            return Ok(());
        }
        match self.faults.trickle {
            Some((chunk, delay)) => {
                for c in data.chunks(chunk.max(1)) {
                    self.out.data(c).await?;
                    self.sent += c.len();
                    tokio::time::sleep(delay).await;
                }
            }
            None => {
                self.out.data(data).await?;
                self.sent += data.len();
            }
        }
        Ok(())
    }
}

/// The device's output of `cmd` for `ctx`, rendered once per configuration revision (`None`:
/// the template cannot be rendered ahead, render it per call).
fn rendered(dev: &SimDevice, cmd: &str, tpl: &str, ctx: &Ctx) -> Option<Arc<Rendered>> {
    if let Ok(cache) = dev.rendered.lock()
        && let Some((rev, r)) = cache.get(cmd)
        && *rev == ctx.rev
    {
        return Some(r.clone());
    }
    // Rendered outside the lock; two sessions racing here both render, one result is kept.
    let r = Arc::new(Rendered::new(&dev.platform, cmd, tpl, ctx)?);
    if let Ok(mut cache) = dev.rendered.lock() {
        cache.insert(cmd.to_string(), (ctx.rev, r.clone()));
    }
    Some(r)
}
