//! Reading image archives: `docker save` tarballs (`manifest.json` + config + layer tars;
//! the legacy layout with per-layer directories and the Docker 25+ one with `blobs/`) and OCI
//! image layouts (`oci-layout` + `index.json` + `blobs/`), as a directory or a tar, either
//! of them optionally gzip-compressed.
//!
//! Blobs are copied into the store with their digests computed (docker save) or checked (OCI
//! layout) on the way; a tar archive is read in place through an index of member offsets.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;

use super::blobs::Blobs;
use super::digest::{sha256_of, temp_path, HashingReader};
use super::manifest::{self, oci_manifest_json, Descriptor, Doc, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR};
use super::ImageError;

/// One image found in an archive, with its blobs already in the store.
#[derive(Debug)]
pub(crate) struct Found {
    /// References as written in the archive (`busybox:1.36`, `host/repo:tag`).
    pub names: Vec<String>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Members of an archive, by relative path.
trait Source {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>>;
    fn exists(&self, name: &str) -> bool;
}

fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

struct DirSource(PathBuf);

impl Source for DirSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        let rel = normalize(name).ok_or_else(|| io::Error::other(format!("{name:?} leaves the archive")))?;
        Ok(Box::new(BufReader::new(File::open(self.0.join(rel))?)))
    }
    fn exists(&self, name: &str) -> bool {
        normalize(name).is_some_and(|rel| self.0.join(rel).is_file())
    }
}

/// A tar archive read in place: member name -> (offset, size); symlinks and hard links are
/// resolved to their targets (old `docker save` links shared layers).
struct TarSource {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

impl TarSource {
    fn index(path: &Path) -> io::Result<Self> {
        let mut archive = tar::Archive::new(File::open(path)?);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            let Some(name) = normalize(&entry.path()?.to_string_lossy()) else { continue };
            let kind = entry.header().entry_type();
            if kind.is_file() || kind == tar::EntryType::Continuous {
                members.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Some(target) = entry.link_name()? {
                    let target = target.to_string_lossy().into_owned();
                    let joined = if kind.is_symlink() {
                        let dir =
                            Path::new(&name).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                        format!("{dir}/{target}")
                    } else {
                        target
                    };
                    if let Some(resolved) = normalize(&joined) {
                        links.insert(name, resolved);
                    }
                }
            }
        }
        Ok(Self { path: path.to_path_buf(), members, links })
    }

    fn resolve(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(name)?;
        for _ in 0..16 {
            if let Some(m) = self.members.get(&name) {
                return Some(*m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

impl Source for TarSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + '_>> {
        let (offset, size) =
            self.resolve(name).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no member {name:?}")))?;
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(BufReader::new(f).take(size)))
    }
    fn exists(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }
}

fn read_all(src: &dyn Source, name: &str, archive: &Path) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    src.open(name)
        .and_then(|mut r| r.read_to_end(&mut out))
        .map_err(|e| ImageError::Archive { path: archive.to_path_buf(), reason: format!("reading {name}: {e}") })?;
    Ok(out)
}

/// Reads the archive at `path`, copies its blobs into `blobs`, and describes each image.
/// `tmp` holds a decompressed copy of a gzip-compressed archive while it is read.
pub(crate) fn read(path: &Path, blobs: &Blobs, tmp: &Path) -> Result<Vec<Found>, ImageError> {
    let meta = fs::metadata(path).map_err(ImageError::io("reading archive", path))?;
    if meta.is_dir() {
        return read_source(&DirSource(path.to_path_buf()), path, blobs);
    }
    let mut head = [0u8; 2];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(ImageError::io("reading archive", path))?;
    if n == 2 && head == [0x1f, 0x8b] {
        let plain = temp_path(tmp, "archive");
        let result = (|| {
            let mut out = File::create(&plain).map_err(ImageError::io("creating", plain.clone()))?;
            let input = File::open(path).map_err(ImageError::io("reading archive", path))?;
            io::copy(&mut MultiGzDecoder::new(BufReader::new(input)), &mut out)
                .map_err(ImageError::io("decompressing archive", path))?;
            let src = TarSource::index(&plain).map_err(ImageError::io("reading tar archive", path))?;
            read_source(&src, path, blobs)
        })();
        let _ = fs::remove_file(&plain);
        return result;
    }
    let src = TarSource::index(path).map_err(ImageError::io("reading tar archive", path))?;
    read_source(&src, path, blobs)
}

fn read_source(src: &dyn Source, archive: &Path, blobs: &Blobs) -> Result<Vec<Found>, ImageError> {
    if src.exists("manifest.json") {
        docker_save(src, archive, blobs)
    } else if src.exists("index.json") {
        oci_layout(src, archive, blobs)
    } else {
        Err(ImageError::Archive {
            path: archive.to_path_buf(),
            reason: "neither a docker save archive (manifest.json) nor an OCI image layout (index.json)".into(),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Copies a member into the blob store, computing its digest. Returns (digest, size).
fn store_member(src: &dyn Source, name: &str, archive: &Path, blobs: &Blobs) -> Result<(String, u64), ImageError> {
    let reader = src
        .open(name)
        .map_err(|e| ImageError::Archive { path: archive.to_path_buf(), reason: format!("reading {name}: {e}") })?;
    let tmp = blobs.temp();
    let result = (|| {
        let mut out = File::create(&tmp).map_err(ImageError::io("creating", tmp.clone()))?;
        let mut hashing = HashingReader::new(reader);
        io::copy(&mut hashing, &mut out)
            .map_err(|e| ImageError::Archive { path: archive.to_path_buf(), reason: format!("copying {name}: {e}") })?;
        hashing.finish().map_err(ImageError::io("reading archive", archive))
    })();
    match result {
        Ok((digest, size)) => {
            blobs.commit(&tmp, &digest)?;
            Ok((digest, size))
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn docker_save(src: &dyn Source, archive: &Path, blobs: &Blobs) -> Result<Vec<Found>, ImageError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(&read_all(src, "manifest.json", archive)?)
        .map_err(|e| ImageError::Archive { path: archive.to_path_buf(), reason: format!("manifest.json: {e}") })?;
    let mut found = Vec::new();
    for entry in entries {
        let config_bytes = read_all(src, &entry.config, archive)?;
        let config_digest = blobs.put_bytes(&config_bytes)?;
        let config = Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: config_digest,
            size: config_bytes.len() as i64,
            ..Default::default()
        };
        let mut layers = Vec::new();
        for name in &entry.layers {
            let (digest, size) = store_member(src, name, archive, blobs)?;
            let mut head = [0u8; 4];
            let n = File::open(blobs.path(&digest)?)
                .and_then(|mut f| f.read(&mut head))
                .map_err(ImageError::io("reading blob", blobs.path(&digest)?))?;
            let media_type = match manifest::sniff_compression(&head[..n], &digest)? {
                manifest::Compression::Gzip => OCI_LAYER_GZIP,
                manifest::Compression::None => OCI_LAYER_TAR,
            };
            layers.push(Descriptor { media_type: media_type.into(), digest, size: size as i64, ..Default::default() });
        }
        // docker save carries no manifest; berth writes the OCI manifest these blobs make.
        let manifest = oci_manifest_json(&config, &layers);
        let manifest_digest = blobs.put_bytes(&manifest)?;
        found.push(Found { names: entry.repo_tags.unwrap_or_default(), manifest, manifest_digest, config, layers });
    }
    Ok(found)
}

fn blob_name(digest: &str) -> String {
    digest.replacen(':', "/", 1)
}

/// Copies the blob `digest` of an OCI layout into the store, checking its digest.
fn store_blob(src: &dyn Source, digest: &str, archive: &Path, blobs: &Blobs) -> Result<u64, ImageError> {
    let name = format!("blobs/{}", blob_name(digest));
    if blobs.contains(digest) {
        return Ok(fs::metadata(blobs.path(digest)?).map(|m| m.len()).unwrap_or(0));
    }
    let reader = src
        .open(&name)
        .map_err(|e| ImageError::Archive { path: archive.to_path_buf(), reason: format!("reading {name}: {e}") })?;
    Ok(blobs.put_verified(reader, digest)?.1)
}

fn oci_layout(src: &dyn Source, archive: &Path, blobs: &Blobs) -> Result<Vec<Found>, ImageError> {
    let what = format!("{}/index.json", archive.display());
    let index = read_all(src, "index.json", archive)?;
    let Doc::Index { manifests } = manifest::parse(&index, &what)? else {
        return Err(ImageError::document(what, "index.json is not an image index"));
    };
    let mut found = Vec::new();
    for entry in manifests {
        let names = layout_names(&entry);
        let mut desc = entry;
        // Nested indexes (multi-platform images): take this host's platform.
        let (bytes, config, layers) = loop {
            let bytes = read_all(src, &format!("blobs/{}", blob_name(&desc.digest)), archive)?;
            let actual = sha256_of(&bytes);
            if actual != desc.digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {} in {}", desc.digest, archive.display()),
                    expected: desc.digest.clone(),
                    actual,
                });
            }
            match manifest::parse(&bytes, &format!("manifest {}", desc.digest))? {
                Doc::Image { config, layers } => break (bytes, config, layers),
                Doc::Index { manifests } => desc = manifest::select_platform(&manifests, &what)?.clone(),
            }
        };
        store_blob(src, &config.digest, archive, blobs)?;
        for layer in &layers {
            store_blob(src, &layer.digest, archive, blobs)?;
        }
        let manifest_digest = blobs.put_bytes(&bytes)?;
        found.push(Found { names, manifest: bytes, manifest_digest, config, layers });
    }
    Ok(found)
}

/// The image names an OCI layout's index gives an entry: containerd's full name, or
/// `org.opencontainers.image.ref.name` when it is a full reference (a bare tag names no
/// repository, so such an image is loaded unnamed and found by its digest).
fn layout_names(entry: &Descriptor) -> Vec<String> {
    let Some(ann) = &entry.annotations else { return Vec::new() };
    if let Some(name) = ann.get("io.containerd.image.name") {
        return vec![name.clone()];
    }
    match ann.get("org.opencontainers.image.ref.name") {
        Some(name) if name.contains('/') || name.contains(':') => vec![name.clone()],
        _ => Vec::new(),
    }
}
