//! Building images from directories and pushing them: what `berth image push-rootfs` and the
//! tests use to make images without Docker.
//!
//! A directory becomes one layer: its files, directories, symlinks and special files with
//! their modes, numeric owners and mtimes; a 0/0 character device (an overlay whiteout, as in
//! a container's `upper`) becomes a `.wh.NAME` entry, so a directory may also describe a layer
//! that deletes files.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{EntryType, Header, HeaderMode};

use super::config::{self, ImageConfig};
use super::digest::sha256_of;
use super::manifest::{oci_manifest_json, Descriptor, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST};
use super::reference::ImageRef;
use super::{registry, ImageError, RegistryAuth};

/// One layer, ready to push or to write into an archive.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The blob as stored (gzip or plain tar).
    pub data: Vec<u8>,
    pub media_type: String,
    /// sha256 of `data`.
    pub digest: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
}

impl LayerBlob {
    /// A layer from an uncompressed tar stream, gzip-compressed or not.
    pub fn from_tar(tar: Vec<u8>, gzip: bool) -> io::Result<Self> {
        let diff_id = sha256_of(&tar);
        let (data, media_type) = if gzip {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(&tar)?;
            (enc.finish()?, OCI_LAYER_GZIP)
        } else {
            (tar, OCI_LAYER_TAR)
        };
        Ok(Self { digest: sha256_of(&data), data, media_type: media_type.to_string(), diff_id })
    }

    /// A gzip layer holding the contents of `dir` (not `dir` itself).
    pub fn from_dir(dir: &Path) -> io::Result<Self> {
        Self::from_tar(tar_dir(dir)?, true)
    }
}

/// An uncompressed tar of the contents of `dir`, entries sorted by path, no symlink followed.
pub fn tar_dir(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(HeaderMode::Complete);
    append_tree(&mut builder, dir, Path::new(""))?;
    builder.into_inner()
}

fn append_tree(builder: &mut tar::Builder<Vec<u8>>, base: &Path, rel: &Path) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(base.join(rel))?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let rel = rel.join(entry.file_name());
        let full = base.join(&rel);
        let meta = fs::symlink_metadata(&full)?;
        let ft = meta.file_type();
        if ft.is_socket() {
            continue;
        }
        if ft.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the layer deletes this name.
            let name = format!(".wh.{}", entry.file_name().to_string_lossy());
            let mut header = Header::new_gnu();
            header.set_entry_type(EntryType::Regular);
            header.set_size(0);
            header.set_mode(0o644);
            header.set_mtime(meta.mtime().max(0) as u64);
            builder.append_data(&mut header, rel.with_file_name(name), io::empty())?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let mut header = Header::new_gnu();
            header.set_metadata_in_mode(&meta, HeaderMode::Complete);
            header.set_entry_type(if ft.is_fifo() {
                EntryType::Fifo
            } else if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            let rdev = meta.rdev();
            header.set_device_major(nix::sys::stat::major(rdev) as u32)?;
            header.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
            header.set_size(0);
            builder.append_data(&mut header, &rel, io::empty())?;
        } else {
            builder.append_path_with_name(&full, &rel)?;
            if ft.is_dir() {
                append_tree(builder, base, &rel)?;
            }
        }
    }
    Ok(())
}

/// A complete image: config, OCI manifest and layers, with their digests.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub layers: Vec<LayerBlob>,
}

impl BuiltImage {
    /// An image of `layers` (bottom first) that runs as `config` says.
    pub fn new(layers: Vec<LayerBlob>, config: &ImageConfig) -> Self {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let config_json = config::to_json(config, &diff_ids, &created, "berth image build");
        let config_digest = sha256_of(&config_json);
        let config_desc = Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: config_digest.clone(),
            size: config_json.len() as i64,
            ..Default::default()
        };
        let layer_descs: Vec<Descriptor> = layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.data.len() as i64,
                ..Default::default()
            })
            .collect();
        let manifest = oci_manifest_json(&config_desc, &layer_descs);
        Self { manifest_digest: sha256_of(&manifest), manifest, config: config_json, config_digest, layers }
    }

    /// Pushes the image to `reference` (plain HTTP for loopback and `insecure` registries).
    /// Returns the manifest digest, by which the image can also be pulled.
    pub async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        insecure: &[String],
    ) -> Result<String, ImageError> {
        let r = ImageRef::parse(reference)?;
        let client = registry::client(r.registry(), insecure, std::time::Duration::from_secs(10));
        let mut blobs: Vec<(&str, &[u8])> =
            self.layers.iter().map(|l| (l.digest.as_str(), l.data.as_slice())).collect();
        blobs.push((self.config_digest.as_str(), self.config.as_slice()));
        registry::push(&client, &r, &registry::oci_auth(auth), auth.is_some(), &blobs, &self.manifest, OCI_MANIFEST)
            .await?;
        Ok(self.manifest_digest.clone())
    }
}

/// Builds a one-layer image from the directory `dir` and pushes it to `reference`.
/// Returns the manifest digest.
pub async fn push_rootfs(
    dir: &Path,
    reference: &str,
    config: &ImageConfig,
    auth: Option<&RegistryAuth>,
    insecure: &[String],
) -> Result<String, ImageError> {
    let d = dir.to_path_buf();
    let layer = tokio::task::spawn_blocking(move || LayerBlob::from_dir(&d))
        .await
        .map_err(|e| ImageError::io("archiving", dir)(io::Error::other(e)))?
        .map_err(ImageError::io("archiving", dir))?;
    BuiltImage::new(vec![layer], config).push(reference, auth, insecure).await
}
