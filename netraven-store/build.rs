//! Rebuilds the crate when a migration is added or changed (`sqlx::migrate!` embeds them at
//! compile time, and stable Rust cannot track the directory from the macro).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
