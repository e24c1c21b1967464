//! Writes an AWS CLI / boto3 profile that points the clients at berth, so that
//! `aws --profile berth ecs list-clusters` works with no other set-up.
//!
//! # Behavior
//!
//! - Files: `$AWS_SHARED_CREDENTIALS_FILE` else `~/.aws/credentials`, and `$AWS_CONFIG_FILE`
//!   else `~/.aws/config`, where the clients look (a leading `~` expanded, as botocore does).
//! - The credentials file gets `[NAME]` with the key pair; the config file gets
//!   `[profile NAME]` with the region and `services = NAME`, and `[services NAME]` with one
//!   nested `endpoint_url` per service: botocore's service-specific endpoints, read by the
//!   aws CLI v1 and v2, boto3 and the other SDKs.
//! - Only those sections are replaced, each whole and in place; every other byte of the
//!   files is kept. Comment and blank lines at the end of a replaced section are kept too,
//!   since they usually introduce the next section. Writing twice gives the same bytes.
//! - Each file is written to a temporary file beside it and renamed over it, so a reader
//!   never sees half a file; a symlinked file is written through to its target. A created
//!   directory is `0700`, the files `0600`: they hold a secret.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

#[cfg(test)]
mod tests;

/// What to write: a named profile with its credentials, region and endpoint.
#[derive(Debug, Clone, Copy)]
pub struct CliProfile<'a> {
    /// The profile name, e.g. `berth`.
    pub name: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// e.g. `us-east-1`.
    pub region: &'a str,
    /// berth's URL, e.g. `http://127.0.0.1:9270`.
    pub endpoint_url: &'a str,
    /// The services to send to berth, by botocore's endpoint-configuration key: the
    /// service id in snake case (`ecs`, `cloudwatch_logs`, `iam`, `sts`), which is not
    /// always the signing name (`logs`).
    pub services: &'a [&'a str],
}

/// The files a profile goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePaths {
    pub credentials: PathBuf,
    pub config: PathBuf,
}

/// Input that would not make a valid profile; returned inside an
/// [`io::ErrorKind::InvalidInput`] error.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile name must be usable inside `[profile NAME]`.
    #[error("profile name {0:?} must be non-empty, without whitespace, brackets or quotes")]
    InvalidName(String),
    /// A service key goes on the left of `KEY =`.
    #[error("service {0:?} must be non-empty and only a-z, 0-9, '_' or '-'")]
    InvalidService(String),
    /// A value must fit on its line.
    #[error("{field} must be non-empty and on one line, got {value:?}")]
    InvalidValue { field: &'static str, value: String },
    /// Neither the file's environment variable nor `HOME` is set.
    #[error("cannot locate the AWS {0} file: neither its environment variable nor HOME is set")]
    NoHome(&'static str),
}

impl From<ProfileError> for io::Error {
    fn from(err: ProfileError) -> Self {
        let kind = match err {
            ProfileError::NoHome(_) => io::ErrorKind::NotFound,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

impl ProfilePaths {
    /// Where the AWS CLI and boto3 of this process's environment read their profiles.
    pub fn from_env() -> io::Result<Self> {
        Ok(Self::resolve(|name| std::env::var_os(name))?)
    }

    /// [`ProfilePaths::from_env`] over any environment, so it can be tested without
    /// touching the process's own.
    fn resolve(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, ProfileError> {
        let home = var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let locate = |env: &str, default: &str, what: &'static str| match var(env).filter(|v| !v.is_empty()) {
            Some(value) => Ok(expand_tilde(PathBuf::from(value), home.as_deref())),
            None => home.as_ref().map(|h| h.join(".aws").join(default)).ok_or(ProfileError::NoHome(what)),
        };
        Ok(Self {
            credentials: locate("AWS_SHARED_CREDENTIALS_FILE", "credentials", "credentials")?,
            config: locate("AWS_CONFIG_FILE", "config", "config")?,
        })
    }
}

/// `~` and `~/x` relative to `home`, like botocore's `os.path.expanduser`.
fn expand_tilde(path: PathBuf, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

/// Writes `p` into the files the environment points the clients at, and says which.
pub fn write_cli_profile(p: &CliProfile<'_>) -> io::Result<ProfilePaths> {
    let paths = ProfilePaths::from_env()?;
    write_cli_profile_to(p, &paths)?;
    Ok(paths)
}

/// Writes `p` into the given files.
pub fn write_cli_profile_to(p: &CliProfile<'_>, paths: &ProfilePaths) -> io::Result<()> {
    validate(p)?;
    update_file(&paths.credentials, &credentials_sections(p))?;
    update_file(&paths.config, &config_sections(p))
}

fn validate(p: &CliProfile<'_>) -> Result<(), ProfileError> {
    let name_ok =
        !p.name.is_empty() && !p.name.chars().any(|c| c.is_whitespace() || c.is_control() || "[]\"'".contains(c));
    if !name_ok {
        return Err(ProfileError::InvalidName(p.name.to_owned()));
    }
    for service in p.services {
        let ok = !service.is_empty()
            && service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(ProfileError::InvalidService((*service).to_owned()));
        }
    }
    for (field, value) in [
        ("access key id", p.access_key_id),
        ("secret access key", p.secret_access_key),
        ("region", p.region),
        ("endpoint URL", p.endpoint_url),
    ] {
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            return Err(ProfileError::InvalidValue { field, value: value.to_owned() });
        }
    }
    Ok(())
}

/// One INI section berth owns: its name as the parsers see it, and its full text.
#[derive(Debug)]
struct Section {
    name: String,
    text: String,
}

impl Section {
    fn new(name: String, lines: &[String]) -> Self {
        let mut text = format!("[{name}]\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        Self { name, text }
    }
}

fn credentials_sections(p: &CliProfile<'_>) -> Vec<Section> {
    vec![Section::new(
        p.name.to_owned(),
        &[
            format!("aws_access_key_id = {}", p.access_key_id),
            format!("aws_secret_access_key = {}", p.secret_access_key),
        ],
    )]
}

fn config_sections(p: &CliProfile<'_>) -> Vec<Section> {
    let profile = Section::new(
        format!("profile {}", p.name),
        &[format!("region = {}", p.region), format!("services = {}", p.name)],
    );
    let endpoints: Vec<String> =
        p.services.iter().flat_map(|s| [format!("{s} ="), format!("  endpoint_url = {}", p.endpoint_url)]).collect();
    vec![profile, Section::new(format!("services {}", p.name), &endpoints)]
}

/// Puts `sections` into the file at `path`, creating it if needed.
fn update_file(path: &Path, sections: &[Section]) -> io::Result<()> {
    let target = write_target(path)?;
    let existing = match fs::read_to_string(&target) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let updated = upsert_sections(&existing, sections);
    if updated == existing && !existing.is_empty() {
        return Ok(());
    }
    write_atomically(&target, &updated)
}

/// The file to replace: a symlink's target, so a dotfiles-managed link keeps working.
fn write_target(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(target) => Ok(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_owned()),
        Err(e) => Err(e),
    }
}

/// The INI text with `sections` replacing any sections of the same names (the first in
/// place, later duplicates dropped) and the missing ones appended.
fn upsert_sections(existing: &str, sections: &[Section]) -> String {
    let mut out = String::with_capacity(existing.len() + 256);
    let mut written = vec![false; sections.len()];
    for block in split_sections(existing) {
        let owned = block.name.as_deref().and_then(|name| sections.iter().position(|s| s.name == name));
        let Some(i) = owned else {
            out.push_str(block.text);
            continue;
        };
        if !written[i] {
            out.push_str(&sections[i].text);
            written[i] = true;
        }
        out.push_str(block.kept_tail());
    }
    for (section, _) in sections.iter().zip(written).filter(|(_, w)| !w) {
        separate(&mut out);
        out.push_str(&section.text);
    }
    out
}

/// Ends `out` with a blank line, unless it is empty, before a section is appended.
fn separate(out: &mut String) {
    if out.is_empty() {
        return;
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let last_line = out[..out.len() - 1].rsplit('\n').next().unwrap_or_default();
    if !last_line.trim().is_empty() {
        out.push('\n');
    }
}

/// A piece of an INI file: the lines before the first section header (no name), or a
/// section header and the lines up to the next header.
#[derive(Debug)]
struct Block<'a> {
    name: Option<String>,
    text: &'a str,
}

impl<'a> Block<'a> {
    /// The trailing comment and blank lines, which stay when the section is replaced.
    fn kept_tail(&self) -> &'a str {
        let lines: Vec<&str> = self.text.split_inclusive('\n').collect();
        let kept = lines.iter().skip(1).rev().take_while(|l| is_comment_or_blank(l)).map(|l| l.len()).sum::<usize>();
        &self.text[self.text.len() - kept..]
    }
}

fn is_comment_or_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#') || t.starts_with(';')
}

/// Splits INI text into blocks at section headers, keeping every byte.
fn split_sections(text: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut name = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(header) = section_name(line) {
            if offset > start || name.is_some() {
                blocks.push(Block { name: name.take(), text: &text[start..offset] });
            }
            start = offset;
            name = Some(header);
        }
        offset += line.len();
    }
    if offset > start || name.is_some() {
        blocks.push(Block { name, text: &text[start..offset] });
    }
    blocks
}

/// The name in a `[ ... ]` header line, whitespace-normalized as botocore reads it
/// (`[profile   berth]` is profile `berth`); `None` for any other line.
fn section_name(line: &str) -> Option<String> {
    let inner = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Replaces `path` with `contents` through a private temporary file and a rename.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.berth-{:016x}.tmp", rand::random::<u64>()));
    let result = write_new_private_file(&tmp, contents).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable.
    fs::File::open(dir)?.sync_all()
}

fn write_new_private_file(path: &Path, contents: &str) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    // The umask may have taken bits away; 0600 exactly is what the clients expect.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
