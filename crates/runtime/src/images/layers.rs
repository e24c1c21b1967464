//! Extracted layers: `layers/<diff-id hex>/diff` holds one layer's changes in the form
//! overlayfs reads as a lower layer, shared by every image that has the layer.
//!
//! # Behavior
//! - Whiteouts become overlay whiteouts: `.wh.NAME` is a 0/0 character device `NAME`;
//!   `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Other `.wh..wh.*`
//!   (aufs bookkeeping) are dropped.
//! - Regular files, directories, symlinks and hard links (within the layer) are applied with
//!   their modes (set-id bits included), numeric ownership (when running as root) and mtimes;
//!   character and block devices and FIFOs are created with `mknod`. Extended attributes from
//!   PAX headers are set, except `trusted.overlay.*` (which would let a layer forge overlay
//!   metadata).
//! - The uncompressed stream is hashed while it is applied; a layer whose diff id does not
//!   match the one its image config names is refused.
//! - A layer is extracted into `tmp/` and renamed into place: the directory exists only whole,
//!   and when two pulls extract the same layer at once, one rename wins and the other copy is
//!   discarded.
//!
//! # Limitations
//! - A hard link must point at a file of the same layer (as Docker and the OCI spec produce).
//! - Entry paths that climb out with `..` are skipped; paths through a symlink of the same layer
//!   are refused.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use tar::EntryType;

use super::digest::{sha256_hex, temp_path, HashingReader};
use super::error::chain;
use super::manifest::{sniff_compression, Compression};
use super::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug)]
pub(crate) struct Layers {
    root: PathBuf,
    tmp: PathBuf,
    links: PathBuf,
}

impl Layers {
    pub(crate) fn new(store_root: &Path) -> Self {
        Self { root: store_root.join("layers"), tmp: store_root.join("tmp"), links: store_root.join("l") }
    }

    pub(crate) fn dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join(sha256_hex(diff_id)?))
    }

    /// The directory overlayfs takes as a lower layer.
    pub(crate) fn diff_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir(diff_id)?.join("diff"))
    }

    pub(crate) fn is_extracted(&self, diff_id: &str) -> bool {
        self.diff_dir(diff_id).map(|d| d.is_dir()).unwrap_or(false)
    }

    /// Extracts the layer blob at `blob` (gzip or plain tar) unless a layer with
    /// `expected_diff_id` is already there. Returns true when this call extracted it.
    pub(crate) fn ensure(&self, blob: &Path, blob_digest: &str, expected_diff_id: &str) -> Result<bool, ImageError> {
        let final_dir = self.dir(expected_diff_id)?;
        if final_dir.join("diff").is_dir() {
            return Ok(false);
        }
        let staging = temp_path(&self.tmp, "layer");
        let result = self.extract_to(blob, blob_digest, expected_diff_id, &staging);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        match fs::rename(&staging, &final_dir) {
            Ok(()) => Ok(true),
            Err(_) if final_dir.join("diff").is_dir() => {
                // Another pull extracted the same layer first; its copy is identical.
                let _ = fs::remove_dir_all(&staging);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(ImageError::io("renaming the extracted layer to", final_dir)(e))
            }
        }
    }

    fn extract_to(&self, blob: &Path, blob_digest: &str, expected: &str, staging: &Path) -> Result<(), ImageError> {
        let diff = staging.join("diff");
        fs::create_dir_all(&diff).map_err(ImageError::io("creating", diff.clone()))?;
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755)).map_err(ImageError::io("chmod", diff.clone()))?;
        let mut file = File::open(blob).map_err(ImageError::io("opening layer blob", blob))?;
        let mut head = [0u8; 4];
        let n = read_head(&mut file, &mut head).map_err(ImageError::io("reading layer blob", blob))?;
        let compression = sniff_compression(&head[..n], blob_digest)?;
        let stream = io::Cursor::new(head[..n].to_vec()).chain(BufReader::with_capacity(1 << 16, file));
        let reader: Box<dyn Read> = match compression {
            Compression::Gzip => Box::new(MultiGzDecoder::new(stream)),
            Compression::None => Box::new(stream),
        };
        let mut hashing = HashingReader::new(reader);
        let layer_error = |e: io::Error| ImageError::Layer { digest: blob_digest.to_string(), reason: chain(&e) };
        apply_tar(&mut hashing, &diff).map_err(layer_error)?;
        let (diff_id, _) = hashing.finish().map_err(layer_error)?;
        if diff_id != expected {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed layer {blob_digest} (diff id)"),
                expected: expected.to_string(),
                actual: diff_id,
            });
        }
        let meta = serde_json::json!({ "diff_id": expected, "blob": blob_digest });
        let meta_path = staging.join("layer.json");
        fs::write(&meta_path, meta.to_string()).map_err(ImageError::io("writing", meta_path))?;
        Ok(())
    }

    /// A short path that resolves to the layer's `diff` directory: `l/<12+ hex>`, a relative
    /// symlink, so that an overlay mount's option string stays short (see `rootfs`).
    pub(crate) fn short_link(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let hex = sha256_hex(diff_id)?;
        let target = PathBuf::from("../layers").join(hex).join("diff");
        fs::create_dir_all(&self.links).map_err(ImageError::io("creating", self.links.clone()))?;
        for len in [12, 16, 24, 32, 64] {
            let link = self.links.join(&hex[..len]);
            match fs::read_link(&link) {
                Ok(existing) if existing == target => return Ok(link),
                Ok(_) => continue, // a prefix collision with another layer: try a longer name
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let tmp = temp_path(&self.links, ".new");
                    symlink(&target, &tmp).map_err(ImageError::io("creating symlink", tmp.clone()))?;
                    fs::rename(&tmp, &link).map_err(ImageError::io("creating symlink", link.clone()))?;
                    return Ok(link);
                }
                Err(e) => return Err(ImageError::io("reading symlink", link)(e)),
            }
        }
        Err(ImageError::Layer { digest: diff_id.to_string(), reason: "no free short link name".into() })
    }
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// The relative path of an entry, or None when it climbs out with `..` or is the root itself.
fn relative_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Creates the parent directories of `rel` under `root`, refusing to pass through a symlink.
fn prepare_parent(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut dir = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            dir.push(c);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if is_whiteout(&m) => {
                    // The layer deleted the name and then recreated it as a directory: in
                    // overlay form that is an opaque directory.
                    fs::remove_file(&dir)?;
                    fs::create_dir(&dir)?;
                    xattr::set(&dir, OPAQUE_XATTR, b"y")?;
                }
                Ok(_) => {
                    return Err(io::Error::other(format!("{} is not a directory inside the layer", dir.display())));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(root.join(rel))
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device() && m.rdev() == 0
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Applies one layer tar stream to the directory `dest` in overlay form.
pub(crate) fn apply_tar(reader: impl Read, dest: &Path) -> io::Result<()> {
    let root = is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(root);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.into_owned();
        let Some(rel) = relative_path(&raw_path) else { continue };
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name == OPAQUE {
            let dir = prepare_parent(dest, &rel)?;
            let dir = dir.parent().unwrap_or(dest);
            xattr::set(dir, OPAQUE_XATTR, b"y")?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(".wh.") || hidden.is_empty() {
                continue;
            }
            let target = prepare_parent(dest, &rel.with_file_name(hidden))?;
            remove_any(&target)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)?;
            continue;
        }
        let kind = entry.header().entry_type();
        let xattrs = pax_xattrs(&mut entry)?;
        let path = match kind {
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let path = prepare_parent(dest, &rel)?;
                remove_any(&path)?;
                let header = entry.header();
                let mode = header.mode()?;
                let (flag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, device(header)?),
                    EntryType::Block => (SFlag::S_IFBLK, device(header)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                mknod(&path, flag, Mode::from_bits_truncate(mode & 0o777), dev).map_err(io::Error::from)?;
                if root {
                    let (uid, gid) = (header.uid()? as u32, header.gid()? as u32);
                    fchownat(
                        nix::fcntl::AT_FDCWD,
                        &path,
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(io::Error::from)?;
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))?;
                path
            }
            _ => {
                let path = prepare_parent(dest, &rel)?;
                let mut opaque = false;
                if kind.is_dir() {
                    match fs::symlink_metadata(&path) {
                        Ok(m) if !m.is_dir() => {
                            opaque = is_whiteout(&m);
                            fs::remove_file(&path)?;
                        }
                        _ => {}
                    }
                } else {
                    // A later entry replaces an earlier one of the same layer (hard links
                    // would fail on an existing name).
                    remove_any(&path)?;
                }
                if !entry.unpack_in(dest)? {
                    continue;
                }
                if opaque {
                    xattr::set(&path, OPAQUE_XATTR, b"y")?;
                }
                path
            }
        };
        if !kind.is_symlink() {
            for (key, value) in xattrs {
                xattr::set(&path, &key, &value)?;
            }
        }
    }
    Ok(())
}

fn device(header: &tar::Header) -> io::Result<u64> {
    let major = header.device_major()?.unwrap_or(0);
    let minor = header.device_minor()?.unwrap_or(0);
    Ok(makedev(major.into(), minor.into()))
}

/// `SCHILY.xattr.*` records of the entry's PAX header, without `trusted.overlay.*`.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if !name.starts_with("trusted.overlay.") {
                        out.push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(out)
}
