//! Test support shared by berth's end-to-end tests (compiled for this crate's tests and, for
//! other crates, with the `testing` feature): a real `docker-registry` on a free loopback
//! port (anonymous, htpasswd basic auth, or bearer-token auth with a [`TokenServer`]), a
//! busybox rootfs builder, and writers for `docker save` archives and OCI layouts.
//!
//! ```ignore
//! let registry = TestRegistry::start()?;                 // docker-registry on 127.0.0.1:PORT
//! let dir = tempdir; busybox_rootfs(dir.path())?;        // /bin/busybox + applet symlinks
//! let digest = push_rootfs(dir.path(), &registry.reference("busybox:1"), &config, None, &[]).await?;
//! ```
//!
//! Needs Debian's `docker-registry` (`/usr/bin/docker-registry`, or `$BERTH_DOCKER_REGISTRY`)
//! and `busybox-static` (`/bin/busybox`, or `$BERTH_BUSYBOX`); token auth also needs `openssl`.

mod token;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::build::{tar_dir, BuiltImage};
use super::digest::{sha256_hex, temp_path};
use super::RegistryAuth;

pub use token::{TokenServer, TokenStats, TokenUser, ISSUER, SERVICE};

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// A `docker-registry` process serving a private storage directory on 127.0.0.1. Killed and
/// its storage removed on drop.
#[derive(Debug)]
pub struct TestRegistry {
    /// `127.0.0.1:PORT`: the registry part of references.
    pub host: String,
    pub addr: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
    auth: Auth,
}

/// How a [`TestRegistry`] authenticates clients.
#[derive(Debug)]
enum Auth {
    Anonymous,
    /// htpasswd (bcrypt) basic auth.
    Basic(RegistryAuth),
    /// Bearer tokens from a token server; the credentials are its first user's.
    Token(RegistryAuth, TokenServer),
}

impl TestRegistry {
    /// An anonymous registry.
    pub fn start() -> io::Result<Self> {
        Self::launch(Auth::Anonymous)
    }

    /// A registry that requires HTTP basic auth with `username`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(username: &str, password: &str) -> io::Result<Self> {
        Self::launch(Auth::Basic(RegistryAuth { username: username.into(), password: password.into() }))
    }

    /// A registry that requires bearer tokens, which its [`TokenServer`] gives to `users`
    /// (each valid for `ttl`); [`Self::auth`] answers the first user's credentials.
    pub fn start_with_token_auth(users: Vec<TokenUser>, ttl: Duration) -> io::Result<Self> {
        let first = users.first().map(|u| u.auth.clone()).ok_or_else(|| other("a token registry needs a user"))?;
        let server = TokenServer::start(users, ttl)?;
        Self::launch(Auth::Token(first, server))
    }

    fn launch(auth: Auth) -> io::Result<Self> {
        let dir = temp_path(&std::env::temp_dir(), "berth-registry");
        fs::create_dir_all(dir.join("storage"))?;
        let unspecified: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut reg = Self { host: String::new(), addr: unspecified, dir, child: None, auth };
        let mut last_err = None;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            reg.addr = ([127, 0, 0, 1], port).into();
            reg.host = reg.addr.to_string();
            reg.write_config()?;
            match reg.spawn() {
                Ok(()) => return Ok(reg),
                Err(e) => {
                    reg.stop();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| other("docker-registry did not start")))
    }

    fn write_config(&self) -> io::Result<()> {
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
            self.dir.join("storage").display(),
            self.addr
        );
        match &self.auth {
            Auth::Anonymous => {}
            Auth::Basic(auth) => {
                let hash = bcrypt::hash(&auth.password, 4).map_err(|e| other(format!("bcrypt: {e}")))?;
                let htpasswd = self.dir.join("htpasswd");
                fs::write(&htpasswd, format!("{}:{hash}\n", auth.username))?;
                yaml.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", htpasswd.display()));
            }
            Auth::Token(_, server) => yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                server.realm(),
                server.cert().display()
            )),
        }
        fs::write(self.dir.join("config.yml"), yaml)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let bin = std::env::var_os("BERTH_DOCKER_REGISTRY")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/docker-registry".into());
        if !bin.exists() {
            return Err(other(format!(
                "{} not found: install Debian's docker-registry package (or set BERTH_DOCKER_REGISTRY)",
                bin.display()
            )));
        }
        let log = fs::File::create(self.dir.join("registry.log"))?;
        let child = Command::new(&bin)
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                return Err(other(format!("docker-registry exited ({status}): {log}")));
            }
            if self.answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(other(format!("docker-registry did not answer on {} within 15 s", self.addr)));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host).as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf.starts_with(b"HTTP/1."))
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// The credentials the registry requires, if any.
    pub fn auth(&self) -> Option<RegistryAuth> {
        match &self.auth {
            Auth::Anonymous => None,
            Auth::Basic(auth) | Auth::Token(auth, _) => Some(auth.clone()),
        }
    }

    /// The token server of a token-auth registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        match &self.auth {
            Auth::Token(_, server) => Some(server),
            _ => None,
        }
    }

    /// Stops the registry (its storage stays until drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The static busybox binary tests build images from.
pub fn busybox_binary() -> io::Result<PathBuf> {
    let bin = std::env::var_os("BERTH_BUSYBOX").map(PathBuf::from).unwrap_or_else(|| "/bin/busybox".into());
    if bin.exists() {
        Ok(bin)
    } else {
        Err(other(format!(
            "{} not found: install Debian's busybox-static package (or set BERTH_BUSYBOX)",
            bin.display()
        )))
    }
}

/// Fills `dir` with a minimal busybox rootfs: `/bin/busybox` plus one symlink per applet
/// (`/bin/sh`, `/bin/ls`, ...), `/etc/passwd` and `/etc/group` (root and nobody), and empty
/// `/tmp` (1777), `/proc`, `/sys`, `/dev`, `/root`.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    let busybox = busybox_binary()?;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    fs::copy(&busybox, bin.join("busybox"))?;
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755))?;
    let list = Command::new(&busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = bin.join(applet);
        if !link.exists() {
            symlink("busybox", link)?;
        }
    }
    for d in ["etc", "proc", "sys", "dev", "root", "tmp"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

fn hex_of(digest: &str) -> io::Result<&str> {
    sha256_hex(digest).map_err(|e| other(e.to_string()))
}

/// Writes a `docker save` archive (the classic layout: `<config hex>.json`,
/// `<layer hex>/layer.tar`, `manifest.json`, `repositories`) holding `images` with their tags.
pub fn write_docker_archive(path: &Path, images: &[(&BuiltImage, &[&str])]) -> io::Result<()> {
    let mut builder = tar::Builder::new(fs::File::create(path)?);
    let mut written = std::collections::HashSet::new();
    let mut manifest = Vec::new();
    let add = |builder: &mut tar::Builder<fs::File>, name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        builder.append_data(&mut h, name, data)
    };
    for (image, tags) in images {
        let config_name = format!("{}.json", hex_of(&image.config_digest)?);
        if written.insert(config_name.clone()) {
            add(&mut builder, &config_name, &image.config)?;
        }
        let mut layer_names = Vec::new();
        for layer in &image.layers {
            let name = format!("{}/layer.tar", hex_of(&layer.digest)?);
            if written.insert(name.clone()) {
                add(&mut builder, &name, &layer.data)?;
            }
            layer_names.push(name);
        }
        manifest.push(serde_json::json!({ "Config": config_name, "RepoTags": tags, "Layers": layer_names }));
    }
    add(&mut builder, "manifest.json", serde_json::to_vec(&manifest)?.as_slice())?;
    builder.into_inner()?.sync_all()
}

/// Writes an OCI image layout into the directory `dir`: `oci-layout`, `index.json` (one
/// entry per image, annotated with `org.opencontainers.image.ref.name` when a name is given)
/// and `blobs/sha256/`.
pub fn write_oci_layout(dir: &Path, images: &[(&BuiltImage, Option<&str>)]) -> io::Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut manifests = Vec::new();
    for (image, name) in images {
        let put = |digest: &str, data: &[u8]| fs::write(blobs.join(hex_of(digest)?), data);
        put(&image.config_digest, &image.config)?;
        put(&image.manifest_digest, &image.manifest)?;
        for layer in &image.layers {
            put(&layer.digest, &layer.data)?;
        }
        let mut entry = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest,
            "size": image.manifest.len(),
        });
        if let Some(name) = name {
            entry["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": name });
        }
        manifests.push(entry);
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)
}

/// A tar file of the directory `dir`'s contents (e.g. an OCI layout as one file).
pub fn tar_directory(dir: &Path, out: &Path) -> io::Result<()> {
    fs::write(out, tar_dir(dir)?)
}
