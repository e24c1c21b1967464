//! Tests of the image store against a real `docker-registry` on loopback and real overlay
//! mounts (run as root, as CI does).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::build::{BuiltImage, LayerBlob};
use super::reference::{is_plain_http, ImageRef};
use super::testing::{busybox_rootfs, tar_directory, write_docker_archive, write_oci_layout, TestRegistry, TokenUser};
use super::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["echo hello".into()],
        env: vec!["PATH=/bin".into(), "GREETING=hi there".into()],
        working_dir: Some("/tmp".into()),
        user: Some("65534:65534".into()),
        exposed_ports: vec!["53/udp".into(), "8080/tcp".into()],
        stop_signal: Some("SIGQUIT".into()),
    }
}

/// The busybox base layer: busybox + applets, plus files the next layer removes.
fn base_layer() -> LayerBlob {
    let dir = tempdir();
    busybox_rootfs(dir.path()).unwrap();
    fs::write(dir.path().join("etc/remove-me"), "gone soon\n").unwrap();
    fs::create_dir_all(dir.path().join("opt/data")).unwrap();
    fs::write(dir.path().join("opt/data/old"), "old\n").unwrap();
    LayerBlob::from_dir(dir.path()).unwrap()
}

/// A layer in Docker's tar form: `.wh.remove-me` deletes a file, `.wh..wh..opq` makes
/// /opt/data opaque, and two files are added.
fn change_layer(added: &str) -> LayerBlob {
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32| {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    file(&mut b, "etc/.wh.remove-me", b"", 0o644);
    file(&mut b, "etc/added", added.as_bytes(), 0o644);
    file(&mut b, "opt/data/.wh..wh..opq", b"", 0o644);
    file(&mut b, "opt/data/new", b"new\n", 0o600);
    LayerBlob::from_tar(b.into_inner().unwrap(), true).unwrap()
}

fn two_layer_image(added: &str) -> BuiltImage {
    BuiltImage::new(vec![base_layer(), change_layer(added)], &config())
}

/// A tar header with the fields real archivers always fill (owner root, mtime).
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("images")).unwrap()
}

fn sh(rootfs: &Path, script: &str) -> String {
    let out = Command::new("chroot").arg(rootfs).args(["/bin/sh", "-c", script]).output().expect("chroot");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn references_normalize_like_docker() {
    let key = |s: &str| ImageRef::parse(s).unwrap().key();
    assert_eq!(key("busybox"), "docker.io/library/busybox:latest");
    assert_eq!(key("busybox:1.36"), "docker.io/library/busybox:1.36");
    assert_eq!(key("127.0.0.1:5000/busybox:1.36"), "127.0.0.1:5000/busybox:1.36");
    let d = format!("sha256:{}", "a".repeat(64));
    assert_eq!(key(&format!("host:5000/x/y:tag@{d}")), format!("host:5000/x/y@{d}"));
    assert!(ImageRef::parse("Busybox").is_err());
    // The same answers as oci-spec's parser (which these cases pay 16 MB to build once).
    let long = format!("x/{}", "a".repeat(300));
    let cases = [
        "busybox",
        "library/busybox:1",
        "index.docker.io/busybox",
        "docker.io/a/b/c:v1.2_3-x",
        "localhost/app",
        "localhost:5000/app:t",
        "my.registry/team/app",
        "test.com:tag",
        "a__b/c.d-e",
        "UPPER/x",
        "x/Y",
        "x:",
        "x@",
        "x:-tag",
        "x@sha256:abc",
        "x@md5:0123456789abcdef0123456789abcdef",
        "",
        "/x",
        "x//y",
        &long,
    ];
    for case in cases
        .iter()
        .map(|c| c.to_string())
        .chain([format!("x@sha512:{}", "b".repeat(128)), format!("x@sha384:{}", "c".repeat(64))])
    {
        let ours = ImageRef::parse(&case).map(|r| r.parsed.whole());
        let theirs = case.parse::<oci_client::Reference>().map(|r| r.whole());
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{case:?}: {ours:?} vs {theirs:?}");
        if let (Ok(a), Ok(b)) = (&ours, &theirs) {
            assert_eq!(a, b, "{case:?}");
        }
    }
    // Go's `\w` is ASCII: Docker refuses a tag that oci-spec's Unicode class lets through.
    assert!(ImageRef::parse("busybox:é").is_err());
    assert!(is_plain_http("127.0.0.1:5000", &[]));
    assert!(is_plain_http("127.1.2.3:80", &[]));
    assert!(is_plain_http("localhost:5000", &[]));
    assert!(is_plain_http("[::1]:5000", &[]));
    assert!(!is_plain_http("registry.example.com", &[]));
    assert!(is_plain_http("registry.lan:5000", &["registry.lan".into()]));
    assert!(is_plain_http("registry.lan:5000", &["registry.lan:5000".into()]));
    assert!(!is_plain_http("registry.lan:5001", &["registry.lan:5000".into()]));
}

#[test]
fn docker_config_nulls_read_as_empty() {
    let doc = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],"Env":null,
        "WorkingDir":"","User":"","ExposedPorts":{"80":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:x"]}}"#;
    let parsed = config::parse(doc, "test").unwrap();
    assert_eq!(parsed.config.cmd, vec!["sh"]);
    assert!(parsed.config.entrypoint.is_empty() && parsed.config.env.is_empty());
    assert_eq!(parsed.config.working_dir, None);
    assert_eq!(parsed.config.user, None);
    assert_eq!(parsed.config.exposed_ports, vec!["80/tcp"]);
    assert_eq!(parsed.diff_ids, vec!["sha256:x"]);
    assert_eq!(PullPolicy::from_ecs("prefer-cached"), Some(PullPolicy::PreferCached));
    assert_eq!(PullPolicy::from_ecs("bogus"), None);
}

#[test]
fn chain_ids_follow_the_oci_definition() {
    let (a, b) = (format!("sha256:{}", "a".repeat(64)), format!("sha256:{}", "b".repeat(64)));
    let image = Image {
        reference: String::new(),
        manifest_digest: String::new(),
        id: String::new(),
        config: ImageConfig::default(),
        layers: vec![a.clone(), b.clone()],
    };
    let chain = image.chain_ids();
    assert_eq!(chain[0], a);
    assert_eq!(chain[1], digest::sha256_of(format!("{a} {b}").as_bytes()));
}

/// Whiteouts, opaque dirs, hard links, symlinks, set-id modes, owners and devices land in
/// overlay form; `..` entries are skipped.
#[test]
fn layer_tar_is_applied_in_overlay_form() {
    use tar::EntryType::*;
    let dir = tempdir();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(Directory, 0o750, 0);
    h.set_uid(1000);
    h.set_gid(1001);
    b.append_data(&mut h, "srv/", std::io::empty()).unwrap();
    let mut h = header(Regular, 0o4755, 5);
    h.set_uid(1000);
    h.set_gid(1001);
    b.append_data(&mut h, "srv/tool", &b"tool\n"[..]).unwrap();
    b.append_link(&mut header(Link, 0o755, 0), "srv/tool-link", "srv/tool").unwrap();
    b.append_link(&mut header(Symlink, 0o777, 0), "srv/abs", "/srv/tool").unwrap();
    let mut h = header(Char, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", std::io::empty()).unwrap();
    b.append_data(&mut header(Fifo, 0o600, 0), "run/fifo", std::io::empty()).unwrap();
    let mut h = header(Regular, 0o644, 0);
    b.append_data(&mut h, "etc/.wh.shadow", std::io::empty()).unwrap();
    b.append_data(&mut h, "var/cache/.wh..wh..opq", std::io::empty()).unwrap();
    b.append_data(&mut h, ".wh..wh.plnk", std::io::empty()).unwrap();
    // Deleted and recreated in the same layer: opaque directories.
    b.append_data(&mut h, ".wh.gone", std::io::empty()).unwrap();
    b.append_data(&mut header(Directory, 0o755, 0), "gone/", std::io::empty()).unwrap();
    b.append_data(&mut h, ".wh.other", std::io::empty()).unwrap();
    b.append_data(&mut h, "other/file", std::io::empty()).unwrap();
    let mut h = header(Regular, 0o644, 4);
    {
        // A `..` path is written raw (the builder refuses it).
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
    }
    b.append(&h, &b"bad\n"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    layers::apply_tar(&tar[..], dir.path()).unwrap();

    let root = dir.path();
    let tool = fs::metadata(root.join("srv/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!((tool.uid(), tool.gid()), (1000, 1001));
    assert_eq!(fs::metadata(root.join("srv")).unwrap().mode() & 0o777, 0o750);
    assert_eq!(fs::metadata(root.join("srv/tool-link")).unwrap().ino(), tool.ino(), "hard link");
    assert_eq!(fs::read_link(root.join("srv/abs")).unwrap(), Path::new("/srv/tool"));
    let null = fs::metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::metadata(root.join("run/fifo")).unwrap().file_type().is_fifo());
    let wh = fs::metadata(root.join("etc/shadow")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout is a 0/0 char device");
    assert_eq!(xattr::get(root.join("var/cache"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
    for d in ["gone", "other"] {
        assert!(root.join(d).is_dir(), "{d}");
        assert_eq!(xattr::get(root.join(d), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]), "{d}");
    }
    assert!(!root.join(".wh..wh.plnk").exists() && !root.join("etc/.wh.shadow").exists());
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

/// Push a two-layer busybox image, pull it by tag and by digest, mount it: the whiteout hides
/// the file, the opaque dir hides the old contents, the new files are there, busybox runs,
/// and the config round-trips. Mounting is idempotent and writes survive a remount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_and_digest_and_mount() {
    let registry = TestRegistry::start().unwrap();
    let work = tempdir();
    let images = store(work.path());
    let built = two_layer_image("added\n");
    let reference = registry.reference("busybox:1.36");
    let pushed = built.push(&reference, None, &[]).await.unwrap();
    assert_eq!(pushed, built.manifest_digest);

    let image = images.pull(&reference, None, PullPolicy::Always).await.unwrap();
    assert_eq!(image.reference, reference);
    assert_eq!(image.manifest_digest, built.manifest_digest);
    assert_eq!(image.id, built.config_digest);
    assert_eq!(image.config, config());
    assert_eq!(image.layers, built.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
    assert_eq!(images.get(&reference).unwrap().as_ref(), Some(&image));

    let by_digest = format!("{}/busybox@{}", registry.host, built.manifest_digest);
    let pulled = images.pull(&by_digest, None, PullPolicy::Always).await.unwrap();
    assert_eq!((pulled.manifest_digest.as_str(), &pulled.layers), (built.manifest_digest.as_str(), &image.layers));
    // A fresh store pulls by digest cold.
    let other = ImageStore::open(&work.path().join("other")).unwrap();
    assert_eq!(other.pull(&by_digest, None, PullPolicy::Default).await.unwrap().manifest_digest, built.manifest_digest);

    let container = work.path().join("c1");
    let rootfs = images.mount_rootfs(&image, &container).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert!(!rootfs.join("etc/remove-me").exists(), "the whiteout hides the file");
    assert_eq!(fs::read_to_string(rootfs.join("etc/added")).unwrap(), "added\n");
    assert!(!rootfs.join("opt/data/old").exists(), "the opaque dir hides the lower contents");
    assert_eq!(fs::read_to_string(rootfs.join("opt/data/new")).unwrap(), "new\n");
    assert_eq!(sh(&rootfs, "cat /etc/added; ls /opt/data"), "added\nnew\n");

    // Idempotent, and writes go to `upper` and survive unmount + mount.
    assert_eq!(images.mount_rootfs(&image, &container).unwrap(), rootfs);
    fs::write(rootfs.join("tmp/state"), "kept").unwrap();
    images.unmount_rootfs(&container).unwrap();
    assert!(!rootfs.join("bin/busybox").exists());
    images.unmount_rootfs(&container).unwrap();
    let rootfs = images.mount_rootfs(&image, &container).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("tmp/state")).unwrap(), "kept");
    // A second store object on the same root (an agent restart) sees the mount and the image.
    let restarted = ImageStore::open(&work.path().join("images")).unwrap();
    let again = restarted.get(&reference).unwrap().expect("image survives a restart");
    assert_eq!(restarted.mount_rootfs(&again, &container).unwrap(), rootfs);
    images.unmount_rootfs(&container).unwrap();
}

/// Two images sharing the base layer: the second pull reuses the extracted base layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_base_layer_is_extracted_once() {
    let registry = TestRegistry::start().unwrap();
    let work = tempdir();
    let images = store(work.path());
    let base = base_layer();
    let a = BuiltImage::new(vec![base.clone(), change_layer("a\n")], &config());
    let b = BuiltImage::new(vec![base.clone(), change_layer("b\n")], &ImageConfig::default());
    a.push(&registry.reference("app/a:1"), None, &[]).await.unwrap();
    b.push(&registry.reference("app/b:1"), None, &[]).await.unwrap();

    let ia = images.pull(&registry.reference("app/a:1"), None, PullPolicy::Default).await.unwrap();
    let base_dir = images.layer_dir(&base.diff_id).unwrap();
    let before = fs::metadata(base_dir.join("bin/busybox")).unwrap();
    let ib = images.pull(&registry.reference("app/b:1"), None, PullPolicy::Default).await.unwrap();
    assert_eq!(ia.layers[0], ib.layers[0]);
    assert_ne!(ia.layers[1], ib.layers[1]);
    let after = fs::metadata(base_dir.join("bin/busybox")).unwrap();
    assert_eq!((before.ino(), before.mtime_nsec()), (after.ino(), after.mtime_nsec()), "same extracted files");
    assert_eq!(fs::read_dir(images.root().join("layers")).unwrap().count(), 3, "base + two top layers");

    let (ca, cb) = (work.path().join("ca"), work.path().join("cb"));
    let (ra, rb) = (images.mount_rootfs(&ia, &ca).unwrap(), images.mount_rootfs(&ib, &cb).unwrap());
    assert_eq!(fs::read_to_string(ra.join("etc/added")).unwrap(), "a\n");
    assert_eq!(fs::read_to_string(rb.join("etc/added")).unwrap(), "b\n");
    assert_eq!(
        fs::metadata(ra.join("bin/busybox")).unwrap().ino(),
        fs::metadata(rb.join("bin/busybox")).unwrap().ino()
    );
    images.unmount_rootfs(&ca).unwrap();
    images.unmount_rootfs(&cb).unwrap();
}

/// PreferCached and Once use the cache without the registry, Default falls back to the
/// cache when the registry is down, Always fails; a missing image fails under every policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policies() {
    let mut registry = TestRegistry::start().unwrap();
    let work = tempdir();
    let images = store(work.path());
    let reference = registry.reference("policy/busybox:1");
    two_layer_image("p\n").push(&reference, None, &[]).await.unwrap();
    let first = images.pull(&reference, None, PullPolicy::Once).await.unwrap();

    registry.stop();
    for policy in [PullPolicy::PreferCached, PullPolicy::Once, PullPolicy::Default] {
        let image = images.pull(&reference, None, policy).await.unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        assert_eq!(image, first, "{policy:?}");
    }
    let err = images.pull(&reference, None, PullPolicy::Always).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unreachable), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
    let missing = registry.reference("policy/other:1");
    for policy in [PullPolicy::PreferCached, PullPolicy::Default, PullPolicy::Once] {
        let err = images.pull(&missing, None, policy).await.unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{policy:?}: {err}");
    }

    // Once does not count an archive load as a pull: it asks the registry.
    let archive = work.path().join("save.tar");
    let loaded = two_layer_image("l\n");
    let name = registry.reference("policy/loaded:1");
    write_docker_archive(&archive, &[(&loaded, &[name.as_str()])]).unwrap();
    images.load_archive(&archive).unwrap();
    assert!(images.pull(&name, None, PullPolicy::PreferCached).await.is_ok());
    assert!(images.pull(&name, None, PullPolicy::Once).await.is_err());

    registry.restart().unwrap();
    assert_eq!(images.pull(&reference, None, PullPolicy::Always).await.unwrap(), first);
}

/// Basic auth: the right password pulls; a wrong one and none are "unauthorized".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let registry = TestRegistry::start_with_auth("berth", "s3cret").unwrap();
    let work = tempdir();
    let images = store(work.path());
    let auth = registry.auth().unwrap();
    let reference = registry.reference("private/busybox:1");
    let built = BuiltImage::new(vec![change_layer("x\n")], &config());
    let err = built.push(&reference, None, &[]).await.unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    built.push(&reference, Some(&auth), &[]).await.unwrap();

    let image = images.pull(&reference, Some(&auth), PullPolicy::Always).await.unwrap();
    assert_eq!(image.manifest_digest, built.manifest_digest);
    let wrong = RegistryAuth { username: "berth".into(), password: "nope".into() };
    let fresh = ImageStore::open(&work.path().join("fresh")).unwrap();
    let err = fresh.pull(&reference, Some(&wrong), PullPolicy::Always).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unauthorized), "{err}");
    assert!(err.to_string().contains("unauthorized") && err.to_string().contains("rejected the credentials"), "{err}");
    let err = fresh.pull(&reference, None, PullPolicy::Always).await.unwrap_err();
    assert!(err.to_string().contains("unauthorized") && err.to_string().contains("requires authentication"), "{err}");
    assert!(!format!("{wrong:?}").contains("nope"), "passwords stay out of Debug");
}

/// Bearer-token auth (a real token server and a registry that verifies its JWTs): the right
/// credentials push and pull, by tag and by digest, with one token per pull however many
/// blobs it fetches; wrong credentials fail naming authentication and the token service's
/// reason; none fail as "requires authentication"; the store's configured credentials work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let users = vec![TokenUser::new("berth", "t0ken", &["pull", "push"]), TokenUser::new("reader", "r3ad", &["pull"])];
    let registry = TestRegistry::start_with_token_auth(users, Duration::from_secs(300)).unwrap();
    let tokens = registry.token_server().unwrap().stats();
    let work = tempdir();
    let auth = registry.auth().unwrap();
    let reference = registry.reference("private/token:1");
    let built = two_layer_image("token\n");
    let err = built.push(&reference, None, &[]).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unauthorized), "{err}");
    built.push(&reference, Some(&auth), &[]).await.unwrap();
    assert!(tokens.issued() >= 1, "the push went through the token service");

    let images = store(work.path());
    let before = tokens.issued();
    let image = images.pull(&reference, Some(&auth), PullPolicy::Always).await.unwrap();
    assert_eq!(image.manifest_digest, built.manifest_digest);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(tokens.issued() - before, 1, "one token serves the manifest, the config and both layers");

    let by_digest = format!("{}@{}", registry.reference("private/token"), built.manifest_digest);
    let fresh = ImageStore::open(&work.path().join("by-digest")).unwrap();
    let pulled = fresh.pull(&by_digest, Some(&auth), PullPolicy::Always).await.unwrap();
    assert_eq!((pulled.manifest_digest, pulled.id), (built.manifest_digest.clone(), image.id));

    let configured =
        ImageStoreConfig { credentials: vec![(registry.host.clone(), auth.clone())], ..Default::default() };
    let agent_store = ImageStore::open_with(&work.path().join("configured"), configured).unwrap();
    agent_store.pull(&reference, None, PullPolicy::Always).await.unwrap();

    // A pull-only account pulls, and its push is refused: the token grants no push.
    let reader = RegistryAuth { username: "reader".into(), password: "r3ad".into() };
    let read_store = ImageStore::open(&work.path().join("reader")).unwrap();
    read_store.pull(&reference, Some(&reader), PullPolicy::Always).await.unwrap();
    let err = built.push(&registry.reference("private/token:2"), Some(&reader), &[]).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unauthorized), "{err}");
    assert!(err.to_string().contains("do not grant push on private/token"), "{err}");

    let wrong = RegistryAuth { username: "berth".into(), password: "nope".into() };
    let refused = tokens.refused();
    let empty = ImageStore::open(&work.path().join("empty")).unwrap();
    let err = empty.pull(&reference, Some(&wrong), PullPolicy::Always).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unauthorized), "{err}");
    let text = err.to_string();
    assert!(text.contains("rejected the credentials") && text.contains("authentication"), "{text}");
    assert!(text.contains("incorrect username or password"), "the token service's reason: {text}");
    assert_eq!(tokens.refused(), refused + 1, "wrong credentials reached the token service once");
    let err = empty.pull(&reference, None, PullPolicy::Always).await.unwrap_err();
    assert_eq!(err.pull_failure(), Some(PullFailure::Unauthorized), "{err}");
    assert!(err.to_string().contains("requires authentication"), "{err}");
    assert!(empty.get(&reference).unwrap().is_none(), "nothing was stored by the refused pulls");
}

/// A missing tag or repository says "not found"; a reference that does not parse says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_is_not_found() {
    let registry = TestRegistry::start().unwrap();
    let work = tempdir();
    let images = store(work.path());
    BuiltImage::new(vec![change_layer("x\n")], &config())
        .push(&registry.reference("there:1"), None, &[])
        .await
        .unwrap();
    for missing in ["there:2", "nowhere:1"] {
        let err = images.pull(&registry.reference(missing), None, PullPolicy::Default).await.unwrap_err();
        assert_eq!(err.pull_failure(), Some(PullFailure::NotFound), "{err}");
        assert!(err.to_string().contains("not found"), "{err}");
    }
    let err = images.pull("Bad Reference", None, PullPolicy::Default).await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference { .. }), "{err}");
}

/// A `docker save` tarball (classic layout, plain tar layers, a layer shared by two images,
/// two tags on one image) loads with its tags; `busybox` finds `busybox:latest`.
#[test]
fn load_docker_save_archive() {
    let work = tempdir();
    let images = store(work.path());
    let base_dir = tempdir();
    busybox_rootfs(base_dir.path()).unwrap();
    fs::write(base_dir.path().join("etc/remove-me"), "x").unwrap();
    let base = LayerBlob::from_tar(super::build::tar_dir(base_dir.path()).unwrap(), false).unwrap();
    let one = BuiltImage::new(vec![base.clone(), change_layer("one\n")], &config());
    let two = BuiltImage::new(vec![base], &ImageConfig { cmd: vec!["sh".into()], ..Default::default() });
    let archive = work.path().join("save.tar");
    write_docker_archive(
        &archive,
        &[(&one, &["busybox:latest", "busybox:1.36"]), (&two, &["example.com/tools/sh:v2"])],
    )
    .unwrap();

    let loaded = images.load_archive(&archive).unwrap();
    let names: Vec<&str> = loaded.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(
        names,
        ["docker.io/library/busybox:latest", "docker.io/library/busybox:1.36", "example.com/tools/sh:v2"]
    );
    let got = images.get("busybox").unwrap().expect("busybox:latest");
    assert_eq!(got.config, config());
    assert_eq!(got.layers.len(), 2);
    assert_eq!(images.get("docker.io/library/busybox:1.36").unwrap().unwrap().manifest_digest, got.manifest_digest);
    let sh_image = images.get("example.com/tools/sh:v2").unwrap().unwrap();
    assert_eq!(sh_image.layers[0], got.layers[0], "the shared layer is one layer");
    assert_eq!(images.get(&got.id).unwrap().unwrap().manifest_digest, got.manifest_digest, "found by image id");
    let listed: Vec<String> = images.list().unwrap().into_iter().map(|i| i.reference).collect();
    assert_eq!(
        listed,
        ["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest", "example.com/tools/sh:v2"]
    );

    let container = work.path().join("c");
    let rootfs = images.mount_rootfs(&got, &container).unwrap();
    assert!(!rootfs.join("etc/remove-me").exists());
    assert_eq!(sh(&rootfs, "cat /etc/added"), "one\n");
    images.unmount_rootfs(&container).unwrap();
    // Loading again is a no-op that returns the same images.
    assert_eq!(images.load_archive(&archive).unwrap(), loaded);
}

/// An OCI layout loads from a directory and from a tar (and a gzipped tar); a bare-tag
/// ref.name gives an unnamed image found by its digest.
#[test]
fn load_oci_layout() {
    let work = tempdir();
    let named = two_layer_image("oci\n");
    let unnamed = BuiltImage::new(vec![change_layer("bare\n")], &ImageConfig::default());
    let layout = work.path().join("layout");
    write_oci_layout(&layout, &[(&named, Some("registry.local/team/app:2")), (&unnamed, Some("latest"))]).unwrap();

    let images = store(work.path());
    let loaded = images.load_archive(&layout).unwrap();
    assert_eq!(loaded[0].reference, "registry.local/team/app:2");
    assert_eq!(loaded[0].manifest_digest, named.manifest_digest, "an OCI layout keeps its manifest digest");
    assert_eq!(loaded[1].reference, unnamed.manifest_digest);
    assert_eq!(images.get(&unnamed.manifest_digest).unwrap().unwrap().layers.len(), 1);
    let by_digest = format!("registry.local/team/app@{}", named.manifest_digest);
    assert_eq!(images.get(&by_digest).unwrap().unwrap().config, config());

    let tar = work.path().join("layout.tar");
    tar_directory(&layout, &tar).unwrap();
    let from_tar = ImageStore::open(&work.path().join("from-tar")).unwrap();
    assert_eq!(from_tar.load_archive(&tar).unwrap()[0].manifest_digest, named.manifest_digest);
    let gz = work.path().join("layout.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&tar).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let from_gz = ImageStore::open(&work.path().join("from-gz")).unwrap();
    let image = from_gz.load_archive(&gz).unwrap().remove(0);
    let container = work.path().join("c");
    let rootfs = from_gz.mount_rootfs(&image, &container).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("etc/added")).unwrap(), "oci\n");
    from_gz.unmount_rootfs(&container).unwrap();

    // A corrupted blob is refused.
    let bad = work.path().join("bad");
    write_oci_layout(&bad, &[(&named, Some("x.local/y:1"))]).unwrap();
    let layer_hex = named.layers[1].digest.trim_start_matches("sha256:");
    fs::write(bad.join("blobs/sha256").join(layer_hex), b"tampered").unwrap();
    let err = ImageStore::open(&work.path().join("bad-store")).unwrap().load_archive(&bad).unwrap_err();
    assert!(err.to_string().contains("failed verification"), "{err}");
}

/// 150 layers: more than mount(2)'s one page of options holds, so the mount goes through
/// fsconfig(lowerdir+); the top layer wins and a middle whiteout hides a bottom file.
#[test]
fn many_layers_mount() {
    let work = tempdir();
    let images = store(work.path());
    let mut layers = Vec::new();
    for i in 0..150 {
        let mut b = tar::Builder::new(Vec::new());
        let body = format!("{i}\n");
        let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
        b.append_data(&mut h, format!("layer-{i}"), body.as_bytes()).unwrap();
        b.append_data(&mut h, "which", body.as_bytes()).unwrap();
        if i == 75 {
            b.append_data(&mut header(tar::EntryType::Regular, 0o644, 0), ".wh.layer-0", std::io::empty()).unwrap();
        }
        layers.push(LayerBlob::from_tar(b.into_inner().unwrap(), false).unwrap());
    }
    let image = BuiltImage::new(layers, &ImageConfig::default());
    let archive = work.path().join("many.tar");
    write_docker_archive(&archive, &[(&image, &["many:1"])]).unwrap();
    let image = images.load_archive(&archive).unwrap().remove(0);
    let per_layer = images.root().join("l/0123456789ab:").as_os_str().len();
    assert!(150 * per_layer > 4096, "the chain does not fit mount(2)'s options, so fsconfig is used");
    let container = work.path().join("c");
    let rootfs = images.mount_rootfs(&image, &container).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("which")).unwrap(), "149\n");
    assert_eq!(fs::read_to_string(rootfs.join("layer-1")).unwrap(), "1\n");
    assert!(!rootfs.join("layer-0").exists());
    assert_eq!(fs::read_dir(&rootfs).unwrap().count(), 149 + 1);
    images.unmount_rootfs(&container).unwrap();
}

/// Concurrent pulls of one image, through two store objects on one root (as two processes
/// would), all succeed with the same image and leave no temporary files behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_do_not_corrupt_the_store() {
    let registry = TestRegistry::start().unwrap();
    let work = tempdir();
    let reference = registry.reference("busy/box:1");
    let built = two_layer_image("c\n");
    built.push(&reference, None, &[]).await.unwrap();
    let a = store(work.path());
    let b = store(work.path());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let r = reference.clone();
        tasks.spawn(async move { s.pull(&r, None, PullPolicy::Always).await });
    }
    while let Some(res) = tasks.join_next().await {
        assert_eq!(res.unwrap().unwrap().manifest_digest, built.manifest_digest);
    }
    assert_eq!(fs::read_dir(a.root().join("tmp")).unwrap().count(), 0);
    let index: serde_json::Value = serde_json::from_slice(&fs::read(a.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["images"].as_object().unwrap().len(), 1);
    let container = work.path().join("c");
    let rootfs = a.mount_rootfs(&a.get(&reference).unwrap().unwrap(), &container).unwrap();
    assert_eq!(sh(&rootfs, "cat /etc/added"), "c\n");
    assert_eq!(fs::metadata(rootfs.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
    a.unmount_rootfs(&container).unwrap();
}

/// Pull timing for the busybox image: `cargo test -p berth-runtime --release -- --ignored
/// --nocapture pull_timing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing figure; run by hand"]
async fn pull_timing() {
    let registry = TestRegistry::start().unwrap();
    let dir = tempdir();
    busybox_rootfs(dir.path()).unwrap();
    let layer = LayerBlob::from_dir(dir.path()).unwrap();
    let built = BuiltImage::new(vec![layer], &config());
    let reference = registry.reference("timing/busybox:1");
    built.push(&reference, None, &[]).await.unwrap();
    let size: usize = built.layers.iter().map(|l| l.data.len()).sum();
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    let mut prefer = Vec::new();
    for _ in 0..5 {
        let work = tempdir();
        let images = store(work.path());
        let t = Instant::now();
        images.pull(&reference, None, PullPolicy::Always).await.unwrap();
        cold.push(t.elapsed());
        let t = Instant::now();
        images.pull(&reference, None, PullPolicy::Always).await.unwrap();
        cached.push(t.elapsed());
        let t = Instant::now();
        images.pull(&reference, None, PullPolicy::PreferCached).await.unwrap();
        prefer.push(t.elapsed());
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "busybox image ({} KiB gzip layer): cold pull {:?}, cached pull (Always: manifest only) {:?}, PreferCached {:?} (median of 5)",
        size / 1024,
        median(&mut cold),
        median(&mut cached),
        median(&mut prefer)
    );
}

#[test]
fn configured_credentials_match_by_registry_then_host() {
    let auth = |u: &str| RegistryAuth { username: u.into(), password: "p".into() };
    let config = ImageStoreConfig {
        credentials: vec![("reg.example:5000".into(), auth("exact")), ("other.example".into(), auth("host"))],
        ..Default::default()
    };
    assert_eq!(config.credentials_for("reg.example:5000").map(|a| a.username.as_str()), Some("exact"));
    assert_eq!(config.credentials_for("other.example:443").map(|a| a.username.as_str()), Some("host"));
    assert!(config.credentials_for("reg.example:6000").is_none());
}
