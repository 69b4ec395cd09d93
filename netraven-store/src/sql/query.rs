//! Dialect-neutral query text and values, and the small helpers every concern module uses.

use chrono::{DateTime, Utc};
use netraven_core::error::{Error, Result};
use netraven_core::model::{LogLevel, Page};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value bound into a query.
#[derive(Debug, Clone)]
pub enum Arg {
    /// An integer.
    I64(i64),
    /// A nullable integer.
    OptI64(Option<i64>),
    /// Text.
    Text(String),
    /// Nullable text.
    OptText(Option<String>),
    /// A timestamp (stored in the backend's timestamp form).
    Ts(DateTime<Utc>),
    /// A nullable timestamp.
    OptTs(Option<DateTime<Utc>>),
    /// A list of ids bound as one parameter (see `Dialect::in_list`).
    Ids(Vec<i64>),
    /// A list of texts bound as one parameter (see `Dialect::in_list`).
    Texts(Vec<String>),
    /// A boolean.
    Bool(bool),
    /// A nullable boolean.
    OptBool(Option<bool>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::OptText(v.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_string))
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Ts(v)
    }
}
impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::OptTs(v)
    }
}
impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::OptBool(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A query: SQL text with `$1`, `$2`, … placeholders (both backends accept that form) and the
/// values for them, in order. Only fixed fragments and placeholders are ever spliced into the
/// text; values are always bound.
#[derive(Debug, Clone)]
pub struct Sql {
    /// The SQL text.
    pub text: String,
    /// The values for `$1`, `$2`, ….
    pub args: Vec<Arg>,
}

impl Sql {
    /// A query without values yet.
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// A query with its values.
    pub fn with_args(text: impl Into<String>, args: Vec<Arg>) -> Self {
        Sql {
            text: text.into(),
            args,
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }
}

/// A WHERE clause under construction: conditions joined by AND, with `$n` placeholders that
/// match the order of `args`.
#[derive(Debug, Default)]
pub(crate) struct Where {
    conds: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Where {
    /// Adds a bound value and returns its placeholder (`$n`).
    pub(crate) fn arg(&mut self, a: impl Into<Arg>) -> String {
        self.args.push(a.into());
        format!("${}", self.args.len())
    }

    /// Adds a condition (SQL text with placeholders from [`Where::arg`]).
    pub(crate) fn cond(&mut self, c: String) {
        self.conds.push(c);
    }

    /// ` WHERE a AND b`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }

    /// `SELECT COUNT(*) AS n FROM {from}` with this clause.
    pub(crate) fn count(&self, from: &str) -> Sql {
        Sql::with_args(
            format!("SELECT COUNT(*) AS n FROM {from}{}", self.sql()),
            self.args.clone(),
        )
    }

    /// `{select}` with this clause, then `ORDER BY {order}` and the page's LIMIT/OFFSET.
    pub(crate) fn page(mut self, select: &str, order: &str, page: Page) -> Sql {
        let mut text = format!("{select}{} ORDER BY {order}", self.sql());
        text.push_str(&page_args(&mut self, page));
        Sql::with_args(text, self.args)
    }
}

/// ` LIMIT $n OFFSET $m` for a page, binding both values into `w`.
pub(crate) fn page_args(w: &mut Where, page: Page) -> String {
    let limit = w.arg(i64::from(page.size.max(1)));
    let offset = w.arg(i64::try_from(page.offset()).unwrap_or(i64::MAX));
    format!(" LIMIT {limit} OFFSET {offset}")
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `%needle%` with LIKE wildcards escaped (for `LIKE … ESCAPE '\'`).
pub(crate) fn contains_pattern(needle: &str) -> String {
    format!("%{}%", like_escape(needle))
}

/// `value` unless it is the epoch placeholder the model uses for "unset".
pub(crate) fn or_now(value: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if value == DateTime::<Utc>::UNIX_EPOCH {
        now
    } else {
        value
    }
}

/// The items without repeats, first occurrence kept.
pub(crate) fn dedup(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

/// The serde name of a unit enum variant (`"forbid"`, …).
pub(crate) fn enum_name<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::internal("enum does not serialise to a string")),
    }
}

/// Parses a serde name produced by [`enum_name`].
pub(crate) fn parse_enum<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::internal(format!("unknown {what} {s:?} in database")))
}

/// JSON text of a value.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("cannot encode JSON: {e}")))
}

/// Parses JSON text from a column.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| Error::internal(format!("invalid {what} JSON in database: {e}")))
}

/// Numeric form of a log level (so `min_level` is a range condition).
pub(crate) fn level_num(l: LogLevel) -> i64 {
    match l {
        LogLevel::Debug => 0,
        LogLevel::Info => 1,
        LogLevel::Warning => 2,
        LogLevel::Error => 3,
    }
}

/// Inverse of [`level_num`].
pub(crate) fn level_from_num(n: i64) -> Result<LogLevel> {
    Ok(match n {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warning,
        3 => LogLevel::Error,
        _ => {
            return Err(Error::internal(format!(
                "unknown log level {n} in database"
            )));
        }
    })
}

/// Converts an unsigned field to a database integer.
pub(crate) fn to_i(what: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(format!("{what} {v} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escape_escapes_wildcards() {
        assert_eq!(like_escape("50%_a\\"), "50\\%\\_a\\\\");
        assert_eq!(contains_pattern("a_b"), "%a\\_b%");
    }

    #[test]
    fn where_numbers_placeholders_in_order() {
        let mut w = Where::default();
        let a = w.arg(1i64);
        let b = w.arg("x");
        w.cond(format!("a = {a}"));
        w.cond(format!("b = {b}"));
        let q = w.page("SELECT * FROM t", "id", Page::new(2, 10));
        assert_eq!(
            q.text,
            "SELECT * FROM t WHERE a = $1 AND b = $2 ORDER BY id LIMIT $3 OFFSET $4"
        );
        assert_eq!(q.args.len(), 4);
    }
}
