//! The `netraven` binary.
fn main() {}
