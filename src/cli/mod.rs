//! The `coopr-router` binary's subcommands, one file each (`args.rs` and `ops.rs` are their
//! shape); the async runtime and the logging they share. The binary is the only user of
//! `anyhow`.

/// `println!` for the subcommands' output: a reader that went away (`coopr-router ... | head`)
/// ends the command quietly, where `println!` panics.
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*), true) };
}

/// `print!` likewise.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*), false) };
}

pub mod adopt;
pub mod args;
pub mod catalog;
pub mod certs;
pub mod moves;
pub mod ops;
pub mod ownership;
pub mod router;
pub mod status;

use anyhow::Context;
use std::io::Write;

/// Writes to standard output (a newline after when `line`). A closed pipe ends the process with
/// success (the reader has all it wanted); any other failure ends it with an error message.
pub fn write_out(args: std::fmt::Arguments<'_>, line: bool) {
    let mut o = std::io::stdout().lock();
    let done = o
        .write_fmt(args)
        .and_then(|()| if line { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| o.flush());
    match done {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

pub fn init_logging(json: bool) {
    coopr_router::logging::init(json);
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
