//! The `coopr-router` binary's subcommands, one file each (`args.rs` and `ops.rs` are their
//! shape); the async runtime and the logging they share. The binary is the only user of
//! `anyhow`.

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

pub fn init_logging(json: bool) {
    coopr_router::logging::init(json);
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
