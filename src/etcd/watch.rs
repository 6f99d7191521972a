//! The ownership watcher: the one task that publishes routing snapshots in etcd mode.
//!
//! Load, then watch: list the prefix at one revision, publish, then watch from that revision + 1
//! with progress notifications (and ask for progress every `fence_after / 3`, so the map is
//! proven current even when nothing changes; the fence itself rests on the lease, see
//! `ownership::freshness`). The events of one watch response become one swap. After a
//! lost connection the watch resumes exactly where it stopped (revision + 1); if etcd compacted
//! past it, or etcd's revision went backwards, the prefix is listed again and the map swapped
//! whole. It never skips to a revision it did not read. Every transition is logged once.

use super::{EtcdError, Settings};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::ownership::{Freshness, RawMap, Touched, keyspace, state_file};
use crate::routing::Publisher;
use crate::shutdown::Shutdown;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a watch ended.
enum End {
    Shutdown,
    /// The start revision was compacted: list again.
    Compacted(i64),
    /// The stream broke; resume from the last revision after a backoff.
    Lost(String),
}

pub struct Watcher {
    settings: Settings,
    cfg: Arc<Config>,
    publisher: Publisher,
    freshness: Arc<Freshness>,
    state_file: Option<PathBuf>,
    saver: Option<tokio::sync::watch::Sender<Option<Arc<RawMap>>>>,
    fence_after: Duration,
    map: RawMap,
    /// Whether `map` holds a map read from etcd in this process (so a watch can resume).
    have_map: bool,
    /// Whether `map` built into a table at its last install (it changes only through one): then
    /// the published table is its table, and the next install rebuilds from it.
    builds: bool,
    connected: bool,
}

impl Watcher {
    pub fn new(
        cfg: Arc<Config>,
        publisher: Publisher,
        freshness: Arc<Freshness>,
        state_file: Option<PathBuf>,
    ) -> Self {
        let o = &cfg.raw.ownership;
        Watcher {
            settings: Settings::from_config(o),
            fence_after: Duration::from_millis(o.fence_after_ms),
            cfg,
            publisher,
            freshness,
            state_file,
            saver: None,
            map: RawMap::default(),
            have_map: false,
            builds: false,
            connected: false,
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown) {
        if let Some(path) = self.state_file.clone() {
            let (tx, rx) = tokio::sync::watch::channel(None);
            self.saver = Some(tx);
            tokio::spawn(save_loop(path, rx));
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            if shutdown.is_triggered() {
                return;
            }
            let end = match self.session().await {
                Ok(mut client) => self.watch_loop(&mut client, &shutdown, &mut backoff).await,
                Err(e) => End::Lost(e.to_string()),
            };
            match end {
                End::Shutdown => return,
                End::Compacted(rev) => {
                    tracing::warn!(
                        compact_revision = rev,
                        at = self.map.revision,
                        "etcd compacted past the watch; listing the map again"
                    );
                    self.have_map = false;
                    self.freshness.count_watch_restart();
                }
                End::Lost(reason) => {
                    self.freshness.set_stale();
                    self.freshness.count_watch_restart();
                    if self.connected {
                        tracing::warn!(%reason, revision = self.map.revision, "lost the etcd watch; serving the last map (owned writes go on while the lease is proven) and reconnecting");
                        self.connected = false;
                    } else {
                        tracing::debug!(%reason, "etcd still unreachable");
                    }
                    tokio::select! {
                        _ = shutdown.clone().wait() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// Connects and makes sure `self.map` is current up to some revision: resume when the
    /// map came from this etcd and etcd has not gone backwards, else list.
    async fn session(&mut self) -> Result<Client, EtcdError> {
        let mut client = self.settings.connect().await?;
        let prefix = self.settings.prefix.clone();
        if self.have_map {
            let now = self.settings.revision(&mut client).await?;
            if now >= self.map.revision {
                self.on_connected("resuming the watch");
                return Ok(client);
            }
            tracing::warn!(
                etcd_revision = now,
                ours = self.map.revision,
                "etcd's revision is behind our map (restored from backup?); listing again"
            );
        }
        // The shards first; their revision pins the other reads, so the map is one snapshot.
        // (history/ is never read back: it grows with every move.)
        let sent = Instant::now();
        let shards = self
            .settings
            .within(client.get(
                keyspace::shards_prefix(&prefix),
                Some(GetOptions::new().with_prefix()),
            ))
            .await?;
        let revision = shards.header().map_or(0, |h| h.revision());
        let at = || GetOptions::new().with_revision(revision);
        let dcs = self
            .settings
            .within(client.get(keyspace::dc_key(&prefix, ""), Some(at().with_prefix())))
            .await?;
        let meta = self
            .settings
            .within(client.get(keyspace::meta_key(&prefix), Some(at())))
            .await?;
        let pins = self
            .settings
            .within(client.get(keyspace::pins_prefix(&prefix), Some(at().with_prefix())))
            .await?;
        let catalog_home = self
            .settings
            .within(client.get(keyspace::catalog_home_key(&prefix), Some(at())))
            .await?;
        self.freshness.read_ok(sent);
        let mut map = RawMap {
            revision,
            ..RawMap::default()
        };
        let kvs = shards.kvs().iter().chain(dcs.kvs()).chain(meta.kvs());
        for kv in kvs.chain(pins.kvs()).chain(catalog_home.kvs()) {
            if let Err(e) = map.put(&prefix, kv.key(), kv.value(), kv.mod_revision()) {
                tracing::error!(error = %e, "ignoring a bad ownership key");
            }
        }
        self.freshness.count_relist();
        self.map = map;
        self.have_map = true;
        self.install(&Touched::whole());
        self.on_connected("listed the map");
        Ok(client)
    }

    fn on_connected(&mut self, how: &str) {
        if !self.connected {
            tracing::info!(revision = self.map.revision, how, "etcd connected");
            self.connected = true;
        }
    }

    /// Watches from `self.map.revision + 1` until something ends it.
    async fn watch_loop(
        &mut self,
        client: &mut Client,
        shutdown: &Shutdown,
        backoff: &mut Backoff,
    ) -> End {
        let prefix = self.settings.prefix.clone();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.map.revision + 1)
            .with_progress_notify();
        let mut stream = match self
            .settings
            .within(client.watch(prefix.as_bytes(), Some(opts)))
            .await
        {
            Ok(s) => s,
            Err(e) => return End::Lost(e.to_string()),
        };
        let period = (self.fence_after / 3).max(Duration::from_millis(30));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_message = Instant::now();
        let stop = shutdown.clone().wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return End::Shutdown,
                _ = tick.tick() => {
                    if last_message.elapsed() > self.fence_after * 2 {
                        return End::Lost(format!("no answer from etcd for {:?}", last_message.elapsed()));
                    }
                    if let Err(e) = stream.request_progress().await {
                        return End::Lost(e.to_string());
                    }
                    // A linearizable read proves etcd still has a leader and answers us; a member
                    // cut off from its leader keeps answering progress requests for a while.
                    let sent = Instant::now();
                    let read = client.get(keyspace::meta_key(&prefix).into_bytes(), Some(GetOptions::new().with_count_only()));
                    if let Ok(Ok(_)) = tokio::time::timeout(period, read).await {
                        self.freshness.read_ok(sent);
                    }
                }
                msg = stream.message() => {
                    let resp = match msg {
                        Err(e) => return End::Lost(e.to_string()),
                        Ok(None) => return End::Lost("watch stream closed".into()),
                        Ok(Some(r)) => r,
                    };
                    last_message = Instant::now();
                    // Reset only once the watch works, so a watch that fails at once backs off.
                    backoff.reset();
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            return End::Compacted(resp.compact_revision());
                        }
                        return End::Lost(format!("watch cancelled: {}", resp.cancel_reason()));
                    }
                    let header_rev = resp.header().map_or(0, |h| h.revision());
                    if resp.events().is_empty() {
                        if resp.created() {
                            continue;
                        }
                        // A progress notification. It proves the stream is alive, but it never
                        // moves the resume point: etcd 3.4 can send a requested progress reply
                        // ahead of queued events (etcd-io/etcd#15220), so the map's revision stays
                        // the last event actually applied.
                        if header_rev >= self.map.revision && self.valid() {
                            self.freshness.progress();
                        }
                        continue;
                    }
                    let mut last = self.map.revision;
                    let mut touched = Touched::default();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        last = last.max(kv.mod_revision());
                        let key = keyspace::parse_key(&prefix, kv.key());
                        if !key.shapes_the_map() {
                            continue;
                        }
                        touched.note(&key);
                        match ev.event_type() {
                            EventType::Put => {
                                if let Err(e) = self.map.put(&prefix, kv.key(), kv.value(), kv.mod_revision()) {
                                    tracing::error!(error = %e, "ignoring a bad ownership value");
                                }
                            }
                            EventType::Delete => self.map.delete(&prefix, kv.key()),
                        }
                    }
                    self.map.revision = last;
                    if touched.any() {
                        self.install(&touched);
                    } else if self.freshness.is_usable() {
                        // Heartbeats and records only: the map is unchanged and proven current
                        // up to them; nothing to rebuild, publish or save.
                        self.freshness.progress();
                    }
                }
            }
        }
    }

    /// Whether the map builds: what its last install found (no table built per progress
    /// notification; at 4,095 shards a build is ~0.1-0.5 ms).
    fn valid(&self) -> bool {
        self.builds
    }

    /// Publishes the map (one swap), saves it, and records progress. A map that does not build
    /// is not published; the old one stays and the router fences.
    ///
    /// After a map that built, the published table is this map's before the changes `touched`
    /// names, so the new one is built from it ([`RawMap::rebuild`]: only the shards touched when
    /// nothing else was); the moved shards are counted over the chunks not shared with it, and
    /// the writer gets a copy of the map that shares its unchanged parts. A publish costs what
    /// the event changed, not the shard count.
    fn install(&mut self, touched: &Touched) {
        let old = self.publisher.current();
        let built = if self.builds {
            self.map.rebuild(&self.cfg, &old, touched)
        } else {
            self.map.build(&self.cfg)
        };
        match built {
            Ok(table) => {
                self.builds = true;
                let changed = old.shards.owners_moved(&table.shards);
                if changed > 0 {
                    tracing::info!(
                        revision = table.revision,
                        shards_moved = changed,
                        "ownership changed"
                    );
                }
                crate::metrics::ownership_flips(changed);
                crate::metrics::map_published(table.revision);
                self.publisher.publish(table);
                self.freshness.set_usable(true);
                self.freshness.progress();
                // Saved by its own task (two fsyncs can take tens of ms): latest map wins.
                if let Some(tx) = &self.saver {
                    tx.send_replace(Some(Arc::new(self.map.clone())));
                }
            }
            Err(e) => {
                self.builds = false;
                tracing::error!(revision = self.map.revision, error = %e, "the map in etcd is not usable; keeping the previous one (fenced)");
                self.freshness.set_usable(false);
            }
        }
    }
}

/// How long the state-file writer waits after a change before it writes: the changes of a
/// burst (a handoff's request, then its commit, a few ms apart) are written once, the latest.
const SAVE_COALESCE: Duration = Duration::from_millis(100);

/// Writes the maps it is given to the state file, off the watcher's path: the latest one, at
/// most [`SAVE_COALESCE`] after a change (when maps come faster than that, or than the disk,
/// only the latest is written). Ends when the watcher does, after writing what it was given.
async fn save_loop(path: PathBuf, mut rx: tokio::sync::watch::Receiver<Option<Arc<RawMap>>>) {
    while rx.changed().await.is_ok() {
        tokio::time::sleep(SAVE_COALESCE).await;
        let Some(map) = rx.borrow_and_update().clone() else {
            continue;
        };
        let p = path.clone();
        match tokio::task::spawn_blocking(move || state_file::save(&p, &map)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the last-known-good map")
            }
            Err(e) => tracing::warn!(error = %e, "the state-file writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of maps is written once it settles, the latest one, and what the writer was
    /// given is written before it ends with the watcher (its sender dropped).
    #[tokio::test(start_paused = true)]
    async fn the_state_file_gets_the_latest_map_of_a_burst() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dc1.json");
        let (tx, rx) = tokio::sync::watch::channel(None);
        let saver = tokio::spawn(save_loop(path.clone(), rx));
        let map = |revision| {
            Some(Arc::new(RawMap {
                revision,
                ..RawMap::default()
            }))
        };
        for revision in 1..=3 {
            tx.send_replace(map(revision));
            tokio::time::sleep(SAVE_COALESCE / 10).await;
        }
        assert_eq!(
            state_file::load(&path).unwrap(),
            None,
            "not written mid-burst"
        );
        tx.send_replace(map(4));
        drop(tx);
        saver.await.unwrap();
        let saved = state_file::load(&path).unwrap().unwrap();
        assert_eq!(saved.revision, 4);
    }
}
