//! Content-addressed blobs: `blobs/sha256/<hex>`, written to `tmp/` and renamed into place
//! only after their digest was checked, so a blob file that exists is always whole and right.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::digest::{sha256_hex, temp_path, HashingReader};
use super::ImageError;

#[derive(Debug)]
pub(crate) struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    pub(crate) fn new(root: &Path) -> Self {
        Self { dir: root.join("blobs").join("sha256"), tmp: root.join("tmp") }
    }

    pub(crate) fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join(sha256_hex(digest)?))
    }

    pub(crate) fn contains(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub(crate) fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest)?;
        fs::read(&path).map_err(ImageError::io("reading blob", path))
    }

    /// A fresh temporary path on the same file system as the blobs (for `commit`).
    pub(crate) fn temp(&self) -> PathBuf {
        temp_path(&self.tmp, "blob")
    }

    /// Moves a verified temporary file into place (atomic; an existing copy is replaced by
    /// identical content).
    pub(crate) fn commit(&self, tmp: &Path, digest: &str) -> Result<PathBuf, ImageError> {
        let path = self.path(digest)?;
        fs::rename(tmp, &path).map_err(ImageError::io("storing blob", path.clone()))?;
        Ok(path)
    }

    /// Copies `reader` into the store, hashing on the way; refuses content whose digest is not
    /// `expected`. Returns the blob's path and size.
    pub(crate) fn put_verified(&self, reader: impl Read, expected: &str) -> Result<(PathBuf, u64), ImageError> {
        sha256_hex(expected)?;
        let tmp = self.temp();
        let result = (|| {
            let mut out = File::create(&tmp).map_err(ImageError::io("creating", tmp.clone()))?;
            let mut hashing = HashingReader::new(reader);
            io::copy(&mut hashing, &mut out).map_err(ImageError::io("writing", tmp.clone()))?;
            let (actual, size) = hashing.finish().map_err(ImageError::io("reading blob for", tmp.clone()))?;
            if actual != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.to_string(),
                    actual,
                });
            }
            Ok(size)
        })();
        match result {
            Ok(size) => Ok((self.commit(&tmp, expected)?, size)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Stores bytes whose digest is computed here. Returns the digest.
    pub(crate) fn put_bytes(&self, data: &[u8]) -> Result<String, ImageError> {
        let digest = super::digest::sha256_of(data);
        if !self.contains(&digest) {
            let tmp = self.temp();
            let mut f = File::create(&tmp).map_err(ImageError::io("creating", tmp.clone()))?;
            f.write_all(data).map_err(ImageError::io("writing", tmp.clone()))?;
            self.commit(&tmp, &digest)?;
        }
        Ok(digest)
    }
}
