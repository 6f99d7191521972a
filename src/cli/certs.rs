//! `coopr-router certs dev`: development certificates.

use anyhow::Context;

pub fn certs_dev(out: &std::path::Path, dcs: &[String], hosts: &[String]) -> anyhow::Result<()> {
    let files = coopr_router::tls::dev::write_dev_set(out, dcs, hosts)
        .with_context(|| format!("writing certificates under {}", out.display()))?;
    for f in &files {
        outln!("{}", f.display());
    }
    outln!(
        "development certificates only: the keys are unprotected; see certs/README.md for a real CA"
    );
    Ok(())
}
