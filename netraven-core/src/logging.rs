//! Process logging (feature `logging`): how a NetRaven process writes its `tracing` events.
//!
//! [`LogPlan::decide`] holds every decision (colour, format, filter) as a pure function of the
//! environment, so it can be tested; [`init`] installs the subscriber it describes.
//!
//! - Colour (ANSI) only for text logs on a terminal, and never when `NO_COLOR` is set to a
//!   non-empty value (<https://no-color.org>).
//! - Filter: `NETRAVEN_LOG`, else `RUST_LOG` (both in `EnvFilter` syntax), else from `-v`, else
//!   the default: INFO, or WARN for commands that draw progress on a terminal.
//! - `json`: one JSON object per line with `timestamp`, `level`, `target`, `fields` (the message
//!   is `fields.message`), `span` (the innermost) and `spans` (all open spans).

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal).
    #[default]
    Text,
    /// JSON lines for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format must be text or json, not '{other}'")),
        }
    }
}

/// Filter of third-party crates that are noisy at INFO.
const QUIET_DEPS: &str = "sqlx=warn";

/// What the process's environment says about logging (inputs of [`LogPlan::decide`]).
#[derive(Debug, Clone, Default)]
pub struct LogEnv {
    /// Configured format (`log.format` / `NETRAVEN_LOG_FORMAT`).
    pub format: LogFormat,
    /// Whether stderr (where logs go) is a terminal.
    pub stderr_is_terminal: bool,
    /// Value of `NO_COLOR`, if set.
    pub no_color: Option<String>,
    /// Value of `NETRAVEN_LOG`, if set.
    pub netraven_log: Option<String>,
    /// Value of `RUST_LOG`, if set.
    pub rust_log: Option<String>,
    /// How many `-v` were given.
    pub verbose: u8,
    /// The command draws progress on the terminal: INFO lines would tear it, so the default is
    /// WARN there.
    pub progress_on_terminal: bool,
}

impl LogEnv {
    /// Reads `NO_COLOR`, `NETRAVEN_LOG`, `RUST_LOG` and whether stderr is a terminal.
    pub fn from_process(format: LogFormat, verbose: u8, draws_progress: bool) -> Self {
        let is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        LogEnv {
            format,
            stderr_is_terminal: is_tty,
            no_color: std::env::var("NO_COLOR").ok(),
            netraven_log: std::env::var("NETRAVEN_LOG").ok(),
            rust_log: std::env::var("RUST_LOG").ok(),
            verbose,
            progress_on_terminal: draws_progress && is_tty,
        }
    }
}

/// The decided logging set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlan {
    /// Line format.
    pub format: LogFormat,
    /// Whether to write ANSI colour codes.
    pub ansi: bool,
    /// `EnvFilter` directives.
    pub filter: String,
    /// Whether the command should draw its progress bar: only on a terminal, with text logs at
    /// the default level (log lines asked for with `-v`, `NETRAVEN_LOG` or `RUST_LOG` would tear
    /// a bar, so then the command logs instead).
    pub progress_bar: bool,
}

impl LogPlan {
    /// Decides format, colour and filter from the environment.
    pub fn decide(env: &LogEnv) -> LogPlan {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let explicit = set(&env.netraven_log).or(set(&env.rust_log));
        let filter = if let Some(f) = explicit {
            f.to_string()
        } else {
            let level = match env.verbose {
                0 if env.progress_on_terminal => "warn",
                0 | 1 => "info",
                2 => "debug",
                _ => "trace",
            };
            format!("{level},{QUIET_DEPS}")
        };
        let no_color = env.no_color.as_deref().is_some_and(|v| !v.is_empty());
        LogPlan {
            format: env.format,
            ansi: env.format == LogFormat::Text && env.stderr_is_terminal && !no_color,
            filter,
            progress_bar: env.progress_on_terminal
                && env.format == LogFormat::Text
                && env.verbose == 0
                && explicit.is_none(),
        }
    }

    /// The `EnvFilter` of this plan; a filter that does not parse falls back to INFO (and says so
    /// on stderr, as logging is not up yet).
    pub fn env_filter(&self) -> EnvFilter {
        EnvFilter::try_new(&self.filter).unwrap_or_else(|e| {
            eprintln!("ignoring log filter '{}': {e}", self.filter);
            EnvFilter::new(format!("info,{QUIET_DEPS}"))
        })
    }

    /// A subscriber following this plan that writes to `writer` (tests pass a buffer).
    pub fn subscriber<W>(&self, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let b = tracing_subscriber::fmt()
            .with_env_filter(self.env_filter())
            .with_writer(writer);
        match self.format {
            LogFormat::Text => Box::new(b.with_ansi(self.ansi).finish()),
            LogFormat::Json => Box::new(
                b.json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_ansi(false)
                    .finish(),
            ),
        }
    }
}

/// Installs the global subscriber for `plan`, writing to stderr. A second call does nothing.
pub fn init(plan: &LogPlan) {
    let _ = tracing::subscriber::set_global_default(plan.subscriber(std::io::stderr));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn env() -> LogEnv {
        LogEnv::default()
    }

    #[test]
    fn colour_only_for_text_on_a_terminal_without_no_color() {
        let tty = LogEnv {
            stderr_is_terminal: true,
            ..env()
        };
        assert!(LogPlan::decide(&tty).ansi);
        assert!(
            !LogPlan::decide(&env()).ansi,
            "a pipe or file gets no colour"
        );
        let no_color = LogEnv {
            no_color: Some("1".into()),
            ..tty.clone()
        };
        assert!(!LogPlan::decide(&no_color).ansi);
        let empty = LogEnv {
            no_color: Some(String::new()),
            ..tty.clone()
        };
        assert!(LogPlan::decide(&empty).ansi, "an empty NO_COLOR is unset");
        let json = LogEnv {
            format: LogFormat::Json,
            ..tty
        };
        assert!(!LogPlan::decide(&json).ansi);
    }

    #[test]
    fn filter_precedence() {
        assert_eq!(LogPlan::decide(&env()).filter, "info,sqlx=warn");
        let rust = LogEnv {
            rust_log: Some("debug".into()),
            ..env()
        };
        assert_eq!(LogPlan::decide(&rust).filter, "debug");
        let both = LogEnv {
            netraven_log: Some("error".into()),
            ..rust.clone()
        };
        assert_eq!(LogPlan::decide(&both).filter, "error");
        let progress = LogEnv {
            progress_on_terminal: true,
            ..env()
        };
        assert_eq!(LogPlan::decide(&progress).filter, "warn,sqlx=warn");
        let verbose = LogEnv {
            verbose: 1,
            ..progress.clone()
        };
        assert_eq!(LogPlan::decide(&verbose).filter, "info,sqlx=warn");
        let progress_rust = LogEnv {
            rust_log: Some("info".into()),
            ..progress
        };
        assert_eq!(LogPlan::decide(&progress_rust).filter, "info");
    }

    #[test]
    fn progress_bar_only_on_a_terminal_at_the_default_level() {
        let tty = LogEnv {
            progress_on_terminal: true,
            stderr_is_terminal: true,
            ..env()
        };
        assert!(LogPlan::decide(&tty).progress_bar);
        assert!(
            !LogPlan::decide(&env()).progress_bar,
            "a pipe gets the summary only"
        );
        for asks_for_logs in [
            LogEnv {
                verbose: 1,
                ..tty.clone()
            },
            LogEnv {
                rust_log: Some("debug".into()),
                ..tty.clone()
            },
            LogEnv {
                netraven_log: Some("info".into()),
                ..tty.clone()
            },
            LogEnv {
                format: LogFormat::Json,
                ..tty.clone()
            },
        ] {
            assert!(
                !LogPlan::decide(&asks_for_logs).progress_bar,
                "{asks_for_logs:?}"
            );
        }
        let blank = LogEnv {
            rust_log: Some(" ".into()),
            ..tty
        };
        assert!(
            LogPlan::decide(&blank).progress_bar,
            "a blank RUST_LOG is unset"
        );
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn capture(plan: &LogPlan) -> String {
        let buf = Buf::default();
        tracing::subscriber::with_default(plan.subscriber(buf.clone()), || {
            let span = tracing::info_span!("run", run_id = 7);
            let _g = span.enter();
            tracing::info!(devices = 3, "run started");
            tracing::debug!("filtered out");
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_carry_timestamp_level_target_fields_and_span() {
        let plan = LogPlan::decide(&LogEnv {
            format: LogFormat::Json,
            stderr_is_terminal: true,
            ..env()
        });
        let out = capture(&plan);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(v["timestamp"].is_string(), "{v}");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], module_path!());
        assert_eq!(v["fields"]["message"], "run started");
        assert_eq!(v["fields"]["devices"], 3);
        assert_eq!(v["span"]["name"], "run");
        assert_eq!(v["span"]["run_id"], 7);
    }

    #[test]
    fn text_without_a_terminal_has_no_escape_codes() {
        let out = capture(&LogPlan::decide(&env()));
        assert!(out.contains("run started"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
        let tty = capture(&LogPlan::decide(&LogEnv {
            stderr_is_terminal: true,
            ..env()
        }));
        assert!(tty.contains('\u{1b}'), "{tty:?}");
    }
}
