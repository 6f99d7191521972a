//! `--data FILE`: the whole state as JSON, loaded at start and rewritten after every logged
//! write (temp file + fsync + rename, so a crash leaves either the old or the new file).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::state::State;
use super::{Shared, SimError};

/// Loads the state file; `None` if it does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<State>, SimError> {
    let buf = match fs::read(path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SimError::Load {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|source| SimError::Parse {
            path: path.to_path_buf(),
            source,
        })
}

/// Saves the current state if `--data` is set. Errors are logged, not returned: the request
/// already succeeded.
pub(crate) async fn save(shared: &Arc<Shared>) {
    let Some(path) = shared.cfg.data.clone() else {
        return;
    };
    let shared = shared.clone();
    let result = tokio::task::spawn_blocking(move || save_now(&shared, &path)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot save simulator state"),
        Err(e) => tracing::error!(error = %e, "state save task failed"),
    }
}

/// Snapshot and write, holding the persist lock so the newest snapshot is written last.
fn save_now(shared: &Shared, path: &Path) -> io::Result<()> {
    let _guard = shared
        .persist_lock
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let buf = serde_json::to_vec(&*shared.read()).map_err(io::Error::other)?;
    write_atomic(path, &buf)
}

fn write_atomic(path: &Path, buf: &[u8]) -> io::Result<()> {
    let mut tmp = PathBuf::from(path);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    tmp.set_file_name(name);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(buf)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename durable; not every platform can open a directory.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
