//! The data directory (`--data-dir`): a node's items, key list, tombstones,
//! identity and last known peers, in one redb database.
//!
//! redb is an embedded, pure-Rust, ACID store: a commit is atomic and, with
//! `Durability::Immediate`, on disk when it returns (one fsync). The core
//! journals every change ([`crate::node::Node::take_changes`]); the driver
//! commits what has piled up in one transaction while the next batch
//! gathers (group commit), so a burst of sets costs a few fsyncs, not one
//! each. A SIGKILL loses at most the changes of the commit in progress, and
//! the database is never left half-written.
//!
//! A second process opening the same directory is refused (redb locks the
//! file), so two nodes never share one store.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::chord::Change;
use crate::core::{Time, Version};
use crate::ring::{HashMethod, U512};

/// Items: `[table index, 64-byte big-endian hash]` → value.
const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
/// Item versions: `[table index, hash]` → 16-byte [`Version`] (absent: unversioned).
const ITEM_VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("item_versions");
/// Item tombstones: `[table index, hash]` → the delete's 16-byte [`Version`].
const ITEM_TOMBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("item_tombstones");
/// The network-wide key list.
const KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("keys");
/// Deleted keys → when (ms since the epoch).
const TOMBSTONES: TableDefinition<&[u8], u64> = TableDefinition::new("tombstones");
/// `id`: the node id, kept so that a restarted node owns the same arc.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// Seeding peers last connected (`host:port` → when), for bootstrap after a restart.
const PEERS: TableDefinition<&str, u64> = TableDefinition::new("peers");

/// Peers remembered for bootstrap: enough to find the ring again.
pub const MAX_SAVED_PEERS: usize = 16;

/// The database file inside the data directory.
const FILE: &str = "rs2p.redb";

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
#[error("data directory {path}: {reason}")]
pub struct DataDirError {
    /// The directory.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// What a data directory held when opened.
#[derive(Debug, Default)]
pub struct Saved {
    /// The node id to keep.
    pub id: Option<String>,
    /// Every item, with its version.
    pub items: Vec<(HashMethod, U512, Bytes, Version)>,
    /// Every item tombstone.
    pub item_tombs: Vec<(HashMethod, U512, Version)>,
    /// When the node last committed (wall ms): how long it was away.
    pub last_alive: Option<Time>,
    /// The key list.
    pub keys: Vec<Bytes>,
    /// Deletes remembered.
    pub tombstones: Vec<(Bytes, Time)>,
    /// Seeding peers last connected, most recent first.
    pub peers: Vec<String>,
}

/// An open data directory.
pub struct DataDir {
    /// The open database; `None` once [`DataDir::close`] released it (the
    /// socket may outlive its shutdown in tasks still finishing, and the
    /// directory must be free for a restart at once).
    db: std::sync::RwLock<Option<Database>>,
    path: PathBuf,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir").field("path", &self.path).finish()
    }
}

fn item_key(table: HashMethod, hash: &U512) -> [u8; 65] {
    let mut k = [0u8; 65];
    k[0] = table.index() as u8;
    k[1..].copy_from_slice(&hash.to_be_bytes::<64>());
    k
}

fn parse_item_key(k: &[u8]) -> Option<(HashMethod, U512)> {
    let table = k.first().and_then(|i| HashMethod::ALL.get(*i as usize)).copied()?;
    (k.len() == 65).then(|| (table, crate::ring::u512_from_be(&k[1..])))
}

impl DataDir {
    /// Opens (creating if needed) the directory and loads what it holds.
    pub fn open(dir: &Path) -> Result<(DataDir, Saved), DataDirError> {
        let fail = |reason: String| DataDirError { path: dir.to_owned(), reason };
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
        let db = Database::create(dir.join(FILE)).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => fail("in use by another process".to_owned()),
            other => fail(format!("cannot open {FILE}: {other}")),
        })?;
        let data = DataDir { db: std::sync::RwLock::new(Some(db)), path: dir.to_owned() };
        let saved = data.load().map_err(|e| fail(format!("cannot read {FILE}: {e}")))?;
        Ok((data, saved))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, held (so that [`DataDir::close`] waits) until the
    /// guard drops: callers keep it for a whole transaction, commit included.
    fn db(&self) -> Result<std::sync::RwLockReadGuard<'_, Option<Database>>, redb::Error> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(redb::Error::Io(std::io::Error::other("the data directory was closed")));
        }
        Ok(guard)
    }

    /// Releases the database (and its file lock): the directory can be
    /// opened again at once, by this process or another.
    pub fn close(&self) {
        self.db.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn load(&self) -> Result<Saved, redb::Error> {
        // Create the tables on first use, so reads below find them.
        let guard = self.db()?;
        let w = guard.as_ref().expect("checked by db()").begin_write()?;
        {
            w.open_table(ITEMS)?;
            w.open_table(ITEM_VERSIONS)?;
            w.open_table(ITEM_TOMBS)?;
            w.open_table(KEYS)?;
            w.open_table(TOMBSTONES)?;
            w.open_table(META)?;
            w.open_table(PEERS)?;
        }
        w.commit()?;
        let r = guard.as_ref().expect("checked by db()").begin_read()?;
        let mut saved = Saved::default();
        let versions = r.open_table(ITEM_VERSIONS)?;
        for entry in r.open_table(ITEMS)?.iter()? {
            let (k, v) = entry?;
            let k = k.value();
            if let Some((table, hash)) = parse_item_key(k) {
                let version = versions.get(k)?.and_then(|b| Version::from_bytes(b.value())).unwrap_or(Version::ZERO);
                saved.items.push((table, hash, Bytes::copy_from_slice(v.value()), version));
            }
        }
        for entry in r.open_table(ITEM_TOMBS)?.iter()? {
            let (k, v) = entry?;
            if let (Some((table, hash)), Some(version)) = (parse_item_key(k.value()), Version::from_bytes(v.value())) {
                saved.item_tombs.push((table, hash, version));
            }
        }
        saved.last_alive = r.open_table(META)?.get("last_alive")?.and_then(|v| v.value().parse().ok());
        for entry in r.open_table(KEYS)?.iter()? {
            saved.keys.push(Bytes::copy_from_slice(entry?.0.value()));
        }
        for entry in r.open_table(TOMBSTONES)?.iter()? {
            let (k, t) = entry?;
            saved.tombstones.push((Bytes::copy_from_slice(k.value()), t.value()));
        }
        saved.id = r.open_table(META)?.get("id")?.map(|v| v.value().to_owned());
        let mut peers: Vec<(u64, String)> = Vec::new();
        for entry in r.open_table(PEERS)?.iter()? {
            let (k, t) = entry?;
            peers.push((t.value(), k.value().to_owned()));
        }
        peers.sort_by(|a, b| b.cmp(a));
        saved.peers = peers.into_iter().map(|(_, p)| p).collect();
        Ok(saved)
    }

    /// Writes a batch of changes in one durable transaction.
    pub fn commit(&self, changes: &[Change]) -> Result<(), redb::Error> {
        let guard = self.db()?;
        let w = guard.as_ref().expect("checked by db()").begin_write()?;
        {
            let mut items = w.open_table(ITEMS)?;
            let mut versions = w.open_table(ITEM_VERSIONS)?;
            let mut tombs = w.open_table(ITEM_TOMBS)?;
            let mut keys = w.open_table(KEYS)?;
            let mut tombstones = w.open_table(TOMBSTONES)?;
            for change in changes {
                match change {
                    Change::Item { table, hash, value: Some(v), version } => {
                        let k = item_key(*table, hash);
                        items.insert(&k[..], &v[..])?;
                        if version.is_zero() {
                            versions.remove(&k[..])?;
                        } else {
                            versions.insert(&k[..], &version.to_bytes()[..])?;
                        }
                    }
                    Change::Item { table, hash, value: None, .. } => {
                        let k = item_key(*table, hash);
                        items.remove(&k[..])?;
                        versions.remove(&k[..])?;
                    }
                    Change::ItemTombstone { table, hash, version: Some(v) } => {
                        tombs.insert(&item_key(*table, hash)[..], &v.to_bytes()[..])?;
                    }
                    Change::ItemTombstone { table, hash, version: None } => {
                        tombs.remove(&item_key(*table, hash)[..])?;
                    }
                    Change::DropTable { table } => {
                        let t = table.index() as u8;
                        items.retain(|k, _| k.first() != Some(&t))?;
                        versions.retain(|k, _| k.first() != Some(&t))?;
                        tombs.retain(|k, _| k.first() != Some(&t))?;
                    }
                    Change::Key { key, listed: true } => {
                        keys.insert(&key[..], ())?;
                    }
                    Change::Key { key, listed: false } => {
                        keys.remove(&key[..])?;
                    }
                    Change::Tombstone { key, at: Some(t) } => {
                        tombstones.insert(&key[..], *t)?;
                    }
                    Change::Tombstone { key, at: None } => {
                        tombstones.remove(&key[..])?;
                    }
                }
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Records that the node is alive at `wall` (ms since the epoch): on a
    /// restart, how long it was away decides whether its items can stand
    /// (see `Config::tombstone_horizon_ms`).
    pub fn save_alive(&self, wall: Time) -> Result<(), redb::Error> {
        let guard = self.db()?;
        let w = guard.as_ref().expect("checked by db()").begin_write()?;
        w.open_table(META)?.insert("last_alive", wall.to_string().as_str())?;
        w.commit()?;
        Ok(())
    }

    /// Records the node id (once, at first start).
    pub fn save_id(&self, id: &str) -> Result<(), redb::Error> {
        let guard = self.db()?;
        let w = guard.as_ref().expect("checked by db()").begin_write()?;
        w.open_table(META)?.insert("id", id)?;
        w.commit()?;
        Ok(())
    }

    /// Replaces the remembered peers (at most [`MAX_SAVED_PEERS`]).
    pub fn save_peers(&self, peers: &[String], now: Time) -> Result<(), redb::Error> {
        let guard = self.db()?;
        let w = guard.as_ref().expect("checked by db()").begin_write()?;
        {
            let mut t = w.open_table(PEERS)?;
            t.retain(|_, _| false)?;
            for p in peers.iter().take(MAX_SAVED_PEERS) {
                t.insert(p.as_str(), now)?;
            }
        }
        w.commit()?;
        Ok(())
    }
}
