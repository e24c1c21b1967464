use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{write_cli_profile_to, CliProfile, ProfileError, ProfilePaths};

fn profile(endpoint_url: &str) -> CliProfile<'_> {
    CliProfile {
        name: "berth",
        access_key_id: "AKIDBERTH",
        secret_access_key: "s3cr3t/with+chars",
        region: "us-east-1",
        endpoint_url,
        services: &["ecs"],
    }
}

fn paths_in(dir: &Path) -> ProfilePaths {
    ProfilePaths { credentials: dir.join(".aws").join("credentials"), config: dir.join(".aws").join("config") }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).expect("file written")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

const CREDENTIALS: &str = "\
[berth]
aws_access_key_id = AKIDBERTH
aws_secret_access_key = s3cr3t/with+chars
";

const CONFIG: &str = "\
[profile berth]
region = us-east-1
services = berth

[services berth]
ecs =
  endpoint_url = http://127.0.0.1:9270
";

#[test]
fn fresh_files_are_created_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("written");
    assert_eq!(read(&paths.credentials), CREDENTIALS);
    assert_eq!(read(&paths.config), CONFIG);
    assert_eq!(mode(&dir.path().join(".aws")), 0o700);
    assert_eq!(mode(&paths.credentials), 0o600);
    assert_eq!(mode(&paths.config), 0o600);
    let leftovers: Vec<_> = fs::read_dir(dir.path().join(".aws"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn several_services_each_get_an_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    let p = CliProfile { services: &["ecs", "cloudwatch_logs"], ..profile("http://h:1") };
    write_cli_profile_to(&p, &paths).expect("written");
    assert!(read(&paths.config).ends_with(
        "[services berth]\necs =\n  endpoint_url = http://h:1\ncloudwatch_logs =\n  endpoint_url = http://h:1\n"
    ));
}

const OTHER_CREDENTIALS: &str = "\
# my keys; do not share
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = x

; work account
[work]
aws_access_key_id   =   AKIDWORK\r
aws_secret_access_key=y";

const OTHER_CONFIG: &str = "\
[default]
region = eu-west-1
output = json

[profile work]
region = us-west-2
s3 =
  max_concurrent_requests = 4
";

#[test]
fn unrelated_profiles_and_comments_are_kept_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    fs::write(&paths.credentials, OTHER_CREDENTIALS).expect("seed");
    fs::write(&paths.config, OTHER_CONFIG).expect("seed");
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("written");
    assert_eq!(read(&paths.credentials), format!("{OTHER_CREDENTIALS}\n\n{CREDENTIALS}"));
    assert_eq!(read(&paths.config), format!("{OTHER_CONFIG}\n{CONFIG}"));
}

#[test]
fn rewriting_with_a_new_port_replaces_the_old_values_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    let before = "[default]\nregion = eu-west-1\n\n";
    let after = "# the work account\n[profile work]\nregion = us-west-2\n";
    fs::write(&paths.config, format!("{before}{CONFIG}\n{after}")).expect("seed");
    write_cli_profile_to(&profile("http://127.0.0.1:9999"), &paths).expect("written");
    let config = read(&paths.config);
    assert_eq!(config, format!("{before}{}\n{after}", CONFIG.replace("9270", "9999")));
}

#[test]
fn writing_twice_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    fs::write(&paths.config, OTHER_CONFIG).expect("seed");
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("first");
    let (credentials, config) = (read(&paths.credentials), read(&paths.config));
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("second");
    assert_eq!(read(&paths.credentials), credentials);
    assert_eq!(read(&paths.config), config);
}

#[test]
fn duplicate_sections_are_merged_into_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    let seeded = "[berth]\naws_access_key_id = OLD1\n\n[default]\naws_access_key_id = D\n\n\
                  [ berth ]\naws_access_key_id = OLD2\naws_secret_access_key = OLD\n";
    fs::write(&paths.credentials, seeded).expect("seed");
    fs::write(&paths.config, "[profile  berth]\nregion = x\n[profile berth]\noutput = text\n").expect("seed");
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("written");
    let credentials = read(&paths.credentials);
    assert_eq!(credentials, format!("{CREDENTIALS}\n[default]\naws_access_key_id = D\n\n"));
    let config = read(&paths.config);
    assert_eq!(config.matches("[profile berth]").count(), 1, "{config}");
    assert_eq!(config.matches("[services berth]").count(), 1, "{config}");
    assert!(!config.contains("output = text"), "{config}");
}

#[test]
fn a_symlinked_file_is_written_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    let real = dir.path().join("dotfiles-credentials");
    fs::write(&real, "[default]\naws_access_key_id = D\n").expect("seed");
    std::os::unix::fs::symlink(&real, &paths.credentials).expect("symlink");
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("written");
    assert!(fs::symlink_metadata(&paths.credentials).expect("link").file_type().is_symlink());
    assert!(read(&real).ends_with(CREDENTIALS));
}

#[test]
fn invalid_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    let cases = [
        CliProfile { name: "two words", ..profile("http://h:1") },
        CliProfile { name: "", ..profile("http://h:1") },
        CliProfile { region: "us-east-1\n[default]", ..profile("http://h:1") },
        CliProfile { services: &["ECS"], ..profile("http://h:1") },
        profile(""),
    ];
    for p in cases {
        let err = write_cli_profile_to(&p, &paths).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    assert!(!dir.path().join(".aws").exists());
}

#[test]
fn paths_follow_the_environment_like_botocore() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    };
    let paths = ProfilePaths::resolve(env(&[("HOME", "/home/u")])).expect("resolved");
    assert_eq!(paths.credentials, PathBuf::from("/home/u/.aws/credentials"));
    assert_eq!(paths.config, PathBuf::from("/home/u/.aws/config"));

    let paths = ProfilePaths::resolve(env(&[
        ("HOME", "/home/u"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/etc/creds"),
        ("AWS_CONFIG_FILE", "~/cfg/aws"),
    ]))
    .expect("resolved");
    assert_eq!(paths.credentials, PathBuf::from("/etc/creds"));
    assert_eq!(paths.config, PathBuf::from("/home/u/cfg/aws"));

    let err = ProfilePaths::resolve(env(&[("AWS_CONFIG_FILE", "/c")])).expect_err("no HOME");
    assert!(matches!(err, ProfileError::NoHome("credentials")), "{err}");
}

/// The real check: botocore (the aws CLI v1 and boto3) reads the written profile and sends
/// ECS calls to berth. Needs python3 with boto3, which the development machines have.
#[test]
fn botocore_picks_up_the_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = paths_in(dir.path());
    fs::create_dir_all(dir.path().join(".aws")).expect("dir");
    fs::write(&paths.config, OTHER_CONFIG).expect("seed");
    write_cli_profile_to(&profile("http://127.0.0.1:9270"), &paths).expect("written");
    let script = "import boto3\n\
                  s = boto3.Session(profile_name='berth')\n\
                  c = s.client('ecs')\n\
                  print(c.meta.endpoint_url, c.meta.region_name, s.get_credentials().access_key)\n\
                  print(s.client('sqs').meta.endpoint_url)";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script])
        .env("AWS_CONFIG_FILE", &paths.config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &paths.credentials);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ECS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ] {
        cmd.env_remove(var);
    }
    let output = match cmd.output() {
        Ok(output) if output.status.success() => output,
        Ok(output) if String::from_utf8_lossy(&output.stderr).contains("No module named") => {
            eprintln!("skipped: python3 has no boto3");
            return;
        }
        Ok(output) => panic!("python3 failed: {}", String::from_utf8_lossy(&output.stderr)),
        Err(e) => {
            eprintln!("skipped: no python3 ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("http://127.0.0.1:9270 us-east-1 AKIDBERTH"));
    let sqs = lines.next().unwrap_or_default();
    assert!(sqs.contains("amazonaws.com"), "only the listed services go to berth: {sqs}");
}
