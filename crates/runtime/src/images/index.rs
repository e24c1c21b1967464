//! `index.json`: which reference names which manifest, and what each image is made of, so
//! `get` and the pull policies work after a restart without asking a registry.
//!
//! Every change takes an exclusive `flock` on `index.lock` (the agent and a `berth image load`
//! may run at once), reads the file, changes it, and replaces it with an fsynced temporary
//! file by rename: readers (which take no lock) see the old or the new file, never a part.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::config::ImageConfig;
use super::digest::temp_path;
use super::ImageError;

/// How a reference came into the store (PullPolicy::Once counts only pulls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    Registry,
    Archive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    pub manifest_digest: String,
    pub source: Source,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// The blob's digest (compressed, as in the manifest).
    pub digest: String,
    /// sha256 of the uncompressed tar: names the extracted layer.
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub config_digest: String,
    pub layers: Vec<LayerRecord>,
    pub config: ImageConfig,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    #[serde(default)]
    pub version: u32,
    /// Normalized reference (`host/repo:tag` or `host/repo@sha256:...`) -> record.
    #[serde(default)]
    pub references: BTreeMap<String, RefRecord>,
    /// Manifest digest -> image.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug)]
pub(crate) struct Index {
    path: PathBuf,
    lock: PathBuf,
    dir: PathBuf,
}

impl Index {
    pub(crate) fn new(root: &Path) -> Self {
        Self { path: root.join("index.json"), lock: root.join("index.lock"), dir: root.to_path_buf() }
    }

    pub(crate) fn read(&self) -> Result<IndexFile, ImageError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::document(format!("image index {}", self.path.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile { version: 1, ..Default::default() }),
            Err(e) => Err(ImageError::io("reading", self.path.clone())(e)),
        }
    }

    /// Read-modify-write under the lock.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut IndexFile) -> T) -> Result<T, ImageError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(ImageError::io("opening", self.lock.clone()))?;
        let _guard = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::io("locking", self.lock.clone())(errno.into()))?;
        let mut index = self.read()?;
        index.version = 1;
        let out = change(&mut index);
        let bytes = serde_json::to_vec_pretty(&index).expect("the index serializes");
        let tmp = temp_path(&self.dir.join("tmp"), "index");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ImageError::io("writing", self.path.clone())(e)
        })?;
        Ok(out)
    }
}
