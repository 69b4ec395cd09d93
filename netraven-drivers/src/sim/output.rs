//! A simulated device's command output, rendered once per command and configuration revision
//! with holes for what changes on every call (the volatile stamp, the salt of re-encrypted
//! secrets), then filled in per call: a 30 KB configuration costs a copy, not a template
//! expansion and a line-end conversion.

use super::render::{Ctx, Mode, SALT_HOLE, STAMP_HOLE, command_index, enc_salt, render_command};
use crate::platform::Platform;
use std::fmt::Write;

/// What goes after a piece of fixed text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hole {
    Nothing,
    Stamp,
    Salt,
}

/// One command's output with `\r\n` line ends, as fixed pieces and holes.
#[derive(Debug)]
pub(crate) struct Rendered {
    pieces: Vec<(Box<[u8]>, Hole)>,
    len: usize,
}

impl Rendered {
    /// Renders `tpl` (the template of `cmd`) for `ctx`; `None` when the template itself holds
    /// a hole character (then the output is rendered per call).
    pub(crate) fn new(platform: &Platform, cmd: &str, tpl: &str, ctx: &Ctx) -> Option<Rendered> {
        if tpl.contains([STAMP_HOLE, SALT_HOLE]) {
            return None;
        }
        let text = render_command(
            platform,
            tpl,
            command_index(platform, cmd),
            ctx,
            &Mode::Holes,
            None,
        )
        .replace('\n', "\r\n");
        let mut pieces: Vec<(Box<[u8]>, Hole)> = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find([STAMP_HOLE, SALT_HOLE]) {
            let hole = if rest[i..].starts_with(STAMP_HOLE) {
                Hole::Stamp
            } else {
                Hole::Salt
            };
            pieces.push((rest.as_bytes()[..i].into(), hole));
            rest = &rest[i + 1..];
        }
        pieces.push((rest.as_bytes().into(), Hole::Nothing));
        let len = pieces.iter().map(|(p, _)| p.len()).sum();
        Some(Rendered { pieces, len })
    }

    /// Appends the output of a call whose volatile stamp is `stamp` to `out`: the same bytes
    /// as rendering the template with that stamp and `\r\n` line ends.
    pub(crate) fn fill(&self, stamp: &str, out: &mut Vec<u8>) {
        let mut salt = String::new();
        out.reserve(self.len + 64);
        for (text, hole) in &self.pieces {
            out.extend_from_slice(text);
            match hole {
                Hole::Nothing => {}
                Hole::Stamp => out.extend_from_slice(stamp.as_bytes()),
                Hole::Salt => {
                    if salt.is_empty() {
                        let _ = write!(salt, "{:x}", enc_salt(stamp));
                    }
                    out.extend_from_slice(salt.as_bytes());
                }
            }
        }
    }
}

/// `\r\n` back to `\n` (exec channels and the pager work on plain lines).
pub(crate) fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::builtin_platform;

    #[test]
    fn filled_output_is_the_rendered_output() {
        let p = builtin_platform("cisco_ios").expect("platform");
        let sim = p.spec.sim.as_ref().expect("sim section");
        let ctx = Ctx {
            hostname: "sim-0007",
            user: "netraven",
            device: 7,
            rev: 3,
            blocks: 12,
        };
        for (cmd, tpl) in &sim.commands {
            let r = Rendered::new(&p, cmd, tpl, &ctx).expect("no holes in templates");
            for stamp in ["00:00:01.001 UTC 1", "12:34:56.789 UTC 45296"] {
                let want = render_command(
                    &p,
                    tpl,
                    command_index(&p, cmd),
                    &ctx,
                    &Mode::Raw { stamp },
                    None,
                )
                .replace('\n', "\r\n");
                let mut got = Vec::new();
                r.fill(stamp, &mut got);
                assert_eq!(String::from_utf8(got.clone()).unwrap(), want, "{cmd}");
                assert_eq!(
                    crlf_to_lf(&got),
                    want.replace("\r\n", "\n").into_bytes(),
                    "{cmd}"
                );
            }
        }
    }
}
