//! Images: pull from OCI / Docker v2 registries, load `docker save` and OCI-layout archives,
//! keep layers content-addressed and extracted once, and mount a container's overlay rootfs.
//!
//! # On disk (`root`, the agent's `<data-dir>/agent/images`)
//! ```text
//! index.json              references -> manifest digests, and what each image is made of
//! index.lock              flock taken while index.json changes
//! blobs/sha256/<hex>      manifests, configs and layer blobs as pulled (verified)
//! layers/<diff hex>/diff  one extracted layer in overlay form (whiteouts as 0/0 devices)
//! layers/<diff hex>/layer.json
//! l/<12 hex>              -> ../layers/<diff hex>/diff, short names for overlay options
//! tmp/                    downloads and extractions in progress (renamed into place when whole)
//! ```
//!
//! # Behavior
//! - References are normalized as Docker does: `busybox` is `docker.io/library/busybox:latest`.
//!   A tag pull also records `host/repo@<manifest digest>`, so a later pull by digest is found.
//! - Registries: Docker schema 2 and OCI manifests, manifest lists and indexes (the entry for
//!   linux and this host's architecture is taken), anonymous, basic and bearer-token auth
//!   (`oci-client` answers the `WWW-Authenticate` challenge). Plain HTTP for loopback registries
//!   (127.0.0.0/8, `localhost`, `[::1]`) and for [`ImageStoreConfig::insecure_registries`];
//!   HTTPS for the rest.
//! - Every blob's digest is checked while it is downloaded or copied from an archive, and
//!   every layer's diff id while it is extracted; content is renamed into place only whole, so
//!   concurrent pulls of one image (in one process or several) do not corrupt the store.
//! - Layers are keyed by diff id, not chain id: an overlay lower layer holds only its own
//!   changes and does not depend on what is under it, so one extracted copy serves every
//!   image that has the layer, whatever its base ([`Image::chain_ids`] gives the chain ids).
//! - Pull policies follow the ECS agent's `ECS_IMAGE_PULL_BEHAVIOR` (see [`PullPolicy`]).
//! - An image loaded from a `docker save` archive (which has no manifest) gets the digest of
//!   the OCI manifest its blobs make; an OCI layout keeps its manifest and digest.
//!
//! # Limitations
//! - Blobs stay in `blobs/` after extraction (so an image can be re-extracted or pushed);
//!   there is no garbage collection of unused images yet.
//! - zstd layers, schema 1 manifests and non-sha256 digests are refused with a message.
//! - Overlay lower-layer limits: see *Rootfs limits* below. Long chains use the new mount
//!   API; overlayfs stacks at most 500 layers.
//! - Extraction creates whiteouts and devices with `mknod` and sets `trusted.*` xattrs: the
//!   store is meant to be used as root (the agent, `berth image load` run by root).
//!
//! # Rootfs limits
//! The classic `mount(2)` takes one page (4096 bytes) of options. Layers are named by
//! `<root>/l/<12 hex>` symlinks, which fits about 95 layers with the default root; a longer
//! chain is mounted with `fsopen`/`fsconfig(lowerdir+)` (Linux 6.8+), one layer at a time.

mod archive;
mod blobs;
mod build;
mod config;
mod digest;
mod error;
mod index;
mod layers;
mod manifest;
mod reference;
mod registry;
mod rootfs;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use build::{push_rootfs, tar_dir, BuiltImage, LayerBlob};
pub use config::{host_architecture, ImageConfig};
pub use error::{ImageError, PullFailure};

use blobs::Blobs;
use index::{ImageRecord, Index, LayerRecord, RefRecord, Source};
use layers::Layers;
use manifest::Descriptor;
use reference::ImageRef;

/// When to contact the registry, as the ECS agent's `ECS_IMAGE_PULL_BEHAVIOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// `default`: always try to pull; when the pull fails, use the cached image if there is
    /// one. (A reference by digest that is cached is used without asking: it cannot change.)
    #[default]
    Default,
    /// `always`: always pull; a failed pull fails, cache or not.
    Always,
    /// `once`: pull only if this store never pulled the reference from a registry (an image
    /// loaded from an archive does not count, as a `docker load`ed one does not for ECS).
    Once,
    /// `prefer-cached`: use the cached image if there is one (pulled or loaded), else pull.
    PreferCached,
}

impl PullPolicy {
    /// Parses `ECS_IMAGE_PULL_BEHAVIOR` values (`default`, `always`, `once`, `prefer-cached`).
    pub fn from_ecs(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "default" => Some(Self::Default),
            "always" => Some(Self::Always),
            "once" => Some(Self::Once),
            "prefer-cached" => Some(Self::PreferCached),
            _ => None,
        }
    }
}

/// Credentials for a registry (basic auth; for a bearer-token registry they are exchanged
/// for a token at the realm the registry names).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// An image in the store, ready to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The normalized reference it was asked for (`127.0.0.1:5000/busybox:1.36`), or its
    /// manifest digest for an unnamed image loaded from an archive.
    pub reference: String,
    /// `sha256:...` of the manifest (the digest `repo@sha256:...` pulls by).
    pub manifest_digest: String,
    /// `sha256:...` of the config blob (Docker's image id).
    pub id: String,
    pub config: ImageConfig,
    /// The layers' diff ids, bottom first.
    pub layers: Vec<String>,
}

impl Image {
    /// The layers' chain ids, bottom first (`chain(n) = sha256(chain(n-1) + " " + diff(n))`).
    pub fn chain_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.layers.len());
        for diff in &self.layers {
            let next = match out.last() {
                None => diff.clone(),
                Some(prev) => digest::sha256_of(format!("{prev} {diff}").as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

/// How the store reaches registries.
#[derive(Debug, Clone)]
pub struct ImageStoreConfig {
    /// Registries (`host:port` or `host`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// How long to wait for a registry's TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Credentials per registry (`host:port` or `host`), used when a pull names none.
    pub credentials: Vec<(String, RegistryAuth)>,
}

impl Default for ImageStoreConfig {
    fn default() -> Self {
        Self { insecure_registries: Vec::new(), connect_timeout: Duration::from_secs(10), credentials: Vec::new() }
    }
}

impl ImageStoreConfig {
    /// The configured credentials for `registry` (`host:port`), by exact name, else by host.
    fn credentials_for(&self, registry: &str) -> Option<&RegistryAuth> {
        let host = reference::host_of(registry);
        let find = |name: &str| self.credentials.iter().find(|(r, _)| r == name).map(|(_, a)| a);
        find(registry).or_else(|| find(host))
    }
}

/// The image store under one root directory. Cheap to clone; clones share locks.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    config: ImageStoreConfig,
    blobs: Blobs,
    layers: Layers,
    index: Index,
    /// One download at a time per blob digest in this process.
    downloads: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One extraction at a time per diff id in this process.
    extractions: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Temporary files older than this are left-overs of a killed process.
const STALE_TMP: Duration = Duration::from_secs(3600);

impl ImageStore {
    /// Opens (creating) the store at `root` with the default configuration.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        Self::open_with(root, ImageStoreConfig::default())
    }

    /// Opens (creating) the store at `root`.
    pub fn open_with(root: &Path, config: ImageStoreConfig) -> Result<Self, ImageError> {
        for sub in ["blobs/sha256", "layers", "l", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(ImageError::io("creating", d))?;
        }
        let root = root.canonicalize().map_err(ImageError::io("resolving", root))?;
        clean_stale(&root.join("tmp"));
        Ok(Self {
            inner: Arc::new(Inner {
                blobs: Blobs::new(&root),
                layers: Layers::new(&root),
                index: Index::new(&root),
                root,
                config,
                downloads: Default::default(),
                extractions: Default::default(),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Resolves `reference` ("127.0.0.1:5000/busybox:1.36", "host/repo@sha256:...",
    /// "busybox" = docker.io/library/busybox:latest) per `policy`.
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        policy: PullPolicy,
    ) -> Result<Image, ImageError> {
        let r = ImageRef::parse(reference)?;
        let key = r.key();
        let cached = self.lookup(&key)?;
        let use_cache = match (&cached, policy) {
            (Some(_), PullPolicy::PreferCached) => true,
            (Some((_, Source::Registry)), PullPolicy::Once) => true,
            (Some(_), PullPolicy::Default) => r.digest().is_some(),
            _ => false,
        };
        if let Some((image, _)) = cached.as_ref().filter(|_| use_cache) {
            tracing::debug!(reference = %key, ?policy, "image: using the cached image");
            return Ok(image.clone());
        }
        let auth = auth.or_else(|| self.inner.config.credentials_for(r.registry()));
        match self.pull_remote(&r, auth).await {
            Ok(image) => Ok(image),
            Err(e) => match (policy, cached) {
                (PullPolicy::Default, Some((image, _))) => {
                    tracing::warn!(reference = %key, error = %e, "image: pull failed; using the cached image");
                    Ok(image)
                }
                _ => Err(e),
            },
        }
    }

    async fn pull_remote(&self, r: &ImageRef, auth: Option<&RegistryAuth>) -> Result<Image, ImageError> {
        let started = std::time::Instant::now();
        let client =
            registry::client(r.registry(), &self.inner.config.insecure_registries, self.inner.config.connect_timeout);
        let oci_auth = registry::oci_auth(auth);
        let authed = auth.is_some();
        let (manifest_bytes, manifest_digest, config_desc, layer_descs) =
            registry::fetch_manifest(&client, r, &oci_auth, authed).await?;
        for layer in &layer_descs {
            check_layer_media_type(layer)?;
        }
        let mut downloads = tokio::task::JoinSet::new();
        for desc in std::iter::once(&config_desc).chain(&layer_descs) {
            if self.inner.blobs.contains(&desc.digest) {
                continue;
            }
            let (store, client, r, desc) = (self.clone(), client.clone(), r.clone(), desc.clone());
            downloads.spawn(async move { store.download(&client, &r, &desc, authed).await });
        }
        while let Some(joined) = downloads.join_next().await {
            joined.map_err(|e| {
                ImageError::io("downloading into", self.inner.root.join("tmp"))(std::io::Error::other(e))
            })??;
        }
        let store = self.clone();
        let digest = manifest_digest.clone();
        let record =
            tokio::task::spawn_blocking(move || store.install(&manifest_bytes, &digest, &config_desc, &layer_descs))
                .await
                .map_err(|e| {
                    ImageError::io("extracting into", self.inner.root.join("layers"))(std::io::Error::other(e))
                })??;
        let keys = vec![r.key(), r.digest_key(&manifest_digest)];
        let image = self.record(&keys, &manifest_digest, record, Source::Registry)?;
        tracing::info!(reference = %image.reference, digest = %image.manifest_digest, elapsed_ms = started.elapsed().as_millis() as u64, "image: pulled");
        Ok(image)
    }

    async fn download(
        &self,
        client: &oci_client::Client,
        r: &ImageRef,
        desc: &Descriptor,
        authed: bool,
    ) -> Result<(), ImageError> {
        let lock = self.inner.downloads.lock().await.entry(desc.digest.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if self.inner.blobs.contains(&desc.digest) {
            return Ok(());
        }
        let tmp = self.inner.blobs.temp();
        registry::fetch_blob(client, r, desc, &tmp, authed).await?;
        self.inner.blobs.commit(&tmp, &desc.digest)?;
        Ok(())
    }

    /// Extracts the layers of an image whose blobs are all in the store. Blocking.
    fn install(
        &self,
        manifest_bytes: &[u8],
        manifest_digest: &str,
        config_desc: &Descriptor,
        layer_descs: &[Descriptor],
    ) -> Result<ImageRecord, ImageError> {
        let inner = &self.inner;
        let stored = inner.blobs.put_bytes(manifest_bytes)?;
        if stored != manifest_digest {
            return Err(ImageError::DigestMismatch {
                what: "manifest".into(),
                expected: manifest_digest.to_string(),
                actual: stored,
            });
        }
        let config_bytes = inner.blobs.read(&config_desc.digest)?;
        let what = format!("image config {}", config_desc.digest);
        let parsed = config::parse(&config_bytes, &what)?;
        if parsed.os != "linux" {
            return Err(ImageError::document(what, format!("the image is for {}, not linux", parsed.os)));
        }
        if !parsed.architecture.is_empty() && parsed.architecture != host_architecture() {
            tracing::warn!(architecture = %parsed.architecture, host = host_architecture(), "image: architecture differs from the host's");
        }
        if parsed.diff_ids.len() != layer_descs.len() {
            return Err(ImageError::document(
                what,
                format!("{} diff ids for {} layers in the manifest", parsed.diff_ids.len(), layer_descs.len()),
            ));
        }
        let mut layers = Vec::with_capacity(layer_descs.len());
        for (desc, diff_id) in layer_descs.iter().zip(&parsed.diff_ids) {
            check_layer_media_type(desc)?;
            let lock =
                inner.extractions.lock().unwrap_or_else(|p| p.into_inner()).entry(diff_id.clone()).or_default().clone();
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            if !inner.layers.is_extracted(diff_id) {
                let blob = inner.blobs.path(&desc.digest)?;
                inner.layers.ensure(&blob, &desc.digest, diff_id)?;
            }
            layers.push(LayerRecord {
                digest: desc.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size.max(0) as u64,
            });
        }
        Ok(ImageRecord { config_digest: config_desc.digest.clone(), layers, config: parsed.config })
    }

    /// Files `record` under `manifest_digest` and points `keys` at it. Returns the image as
    /// named by the first key.
    fn record(
        &self,
        keys: &[String],
        manifest_digest: &str,
        record: ImageRecord,
        source: Source,
    ) -> Result<Image, ImageError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let image =
            to_image(keys.first().cloned().unwrap_or_else(|| manifest_digest.to_string()), manifest_digest, &record);
        self.inner.index.update(|index| {
            for key in keys {
                index.references.insert(
                    key.clone(),
                    RefRecord { manifest_digest: manifest_digest.to_string(), source, updated_at: now.clone() },
                );
            }
            index.images.insert(manifest_digest.to_string(), record);
        })?;
        Ok(image)
    }

    /// The cached image under an index key, when all its layers are extracted.
    fn lookup(&self, key: &str) -> Result<Option<(Image, Source)>, ImageError> {
        let index = self.inner.index.read()?;
        let Some(rec) = index.references.get(key) else { return Ok(None) };
        let Some(image) = index.images.get(&rec.manifest_digest) else { return Ok(None) };
        if !self.complete(image) {
            return Ok(None);
        }
        Ok(Some((to_image(key.to_string(), &rec.manifest_digest, image), rec.source)))
    }

    fn complete(&self, image: &ImageRecord) -> bool {
        image.layers.iter().all(|l| self.inner.layers.is_extracted(&l.diff_id))
    }

    /// Loads a `docker save` tarball or an OCI image layout (dir or tar, optionally gzipped);
    /// returns the images it named (with their tags; an unnamed image by its digest).
    pub fn load_archive(&self, path: &Path) -> Result<Vec<Image>, ImageError> {
        let found = archive::read(path, &self.inner.blobs, &self.inner.root.join("tmp"))?;
        let mut out = Vec::new();
        for f in found {
            let record = self.install(&f.manifest, &f.manifest_digest, &f.config, &f.layers)?;
            let mut keys = Vec::new();
            for name in &f.names {
                let r = ImageRef::parse(name).map_err(|e| ImageError::Archive {
                    path: path.to_path_buf(),
                    reason: format!("image name {name:?}: {e}"),
                })?;
                keys.push(r.key());
                keys.push(r.digest_key(&f.manifest_digest));
            }
            if keys.is_empty() {
                self.record(&[], &f.manifest_digest, record.clone(), Source::Archive)?;
                out.push(to_image(f.manifest_digest.clone(), &f.manifest_digest, &record));
                continue;
            }
            let image = self.record(&keys, &f.manifest_digest, record.clone(), Source::Archive)?;
            out.push(image);
            for pair in keys.chunks(2).skip(1) {
                out.push(to_image(pair[0].clone(), &f.manifest_digest, &record));
            }
        }
        Ok(out)
    }

    /// The cached image for `reference` (a reference, or a bare `sha256:` manifest digest or
    /// image id), if the store has it whole.
    pub fn get(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        if reference.starts_with("sha256:") {
            let index = self.inner.index.read()?;
            let found = index
                .images
                .iter()
                .find(|(digest, rec)| digest.as_str() == reference || rec.config_digest == reference)
                .filter(|(_, rec)| self.complete(rec))
                .map(|(digest, rec)| to_image(digest.clone(), digest, rec));
            return Ok(found);
        }
        let r = ImageRef::parse(reference)?;
        Ok(self.lookup(&r.key())?.map(|(image, _)| image))
    }

    /// Every named image in the store, sorted by reference: one entry per tag, and one per
    /// digest reference (`repo@sha256:...`) only for images that no tag names.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let index = self.inner.index.read()?;
        let tagged: std::collections::HashSet<&str> = index
            .references
            .iter()
            .filter(|(key, _)| !key.contains('@'))
            .map(|(_, rec)| rec.manifest_digest.as_str())
            .collect();
        Ok(index
            .references
            .iter()
            .filter(|(key, rec)| !key.contains('@') || !tagged.contains(rec.manifest_digest.as_str()))
            .filter_map(|(key, rec)| {
                let image = index.images.get(&rec.manifest_digest)?;
                self.complete(image).then(|| to_image(key.clone(), &rec.manifest_digest, image))
            })
            .collect())
    }

    /// Mounts an overlay rootfs for one container at `dir/rootfs` (lowerdirs = the image's
    /// extracted layers, upper/work in `dir`); idempotent; survives an agent restart (an
    /// existing overlay mount at `dir/rootfs` is kept). Needs CAP_SYS_ADMIN.
    pub fn mount_rootfs(&self, image: &Image, dir: &Path) -> Result<PathBuf, ImageError> {
        let mut lowers = Vec::with_capacity(image.layers.len());
        for diff_id in image.layers.iter().rev() {
            if !self.inner.layers.is_extracted(diff_id) {
                return Err(ImageError::NotCached {
                    reference: image.reference.clone(),
                    reason: format!("layer {diff_id} is not extracted"),
                });
            }
            lowers.push(self.inner.layers.short_link(diff_id)?);
        }
        if lowers.is_empty() {
            // An image without layers: overlay needs one lower directory.
            let empty = self.inner.root.join("layers").join("empty");
            fs::create_dir_all(&empty).map_err(ImageError::io("creating", empty.clone()))?;
            lowers.push(empty);
        }
        rootfs::mount_overlay(&lowers, dir)
    }

    /// Unmounts `dir/rootfs` if mounted; keeps `dir/upper` (the caller removes `dir`).
    pub fn unmount_rootfs(&self, dir: &Path) -> Result<(), ImageError> {
        rootfs::unmount(dir)
    }

    /// The extracted directory of a layer (for tests and diagnostics).
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        self.inner.layers.diff_dir(diff_id)
    }
}

fn to_image(reference: String, manifest_digest: &str, rec: &ImageRecord) -> Image {
    Image {
        reference,
        manifest_digest: manifest_digest.to_string(),
        id: rec.config_digest.clone(),
        config: rec.config.clone(),
        layers: rec.layers.iter().map(|l| l.diff_id.clone()).collect(),
    }
}

fn check_layer_media_type(desc: &Descriptor) -> Result<(), ImageError> {
    let t = desc.media_type.as_str();
    if t.is_empty() || t.contains("tar") {
        Ok(())
    } else {
        Err(ImageError::Layer {
            digest: desc.digest.clone(),
            reason: format!("media type {t} is not a file-system layer"),
        })
    }
}

fn clean_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if old {
            let path = entry.path();
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}
