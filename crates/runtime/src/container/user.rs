//! Resolving `user` (`uid`, `uid:gid`, `name`, `name:group`) against the rootfs's
//! `/etc/passwd` and `/etc/group`, with runc's (libcontainer/user) rules:
//!
//! - a name must exist in `/etc/passwd`; a numeric uid need not (gid then defaults to 0);
//! - a group name must exist in `/etc/group`; a numeric gid need not;
//! - supplementary groups are the groups that list the user's name, only when no group
//!   was given;
//! - `HOME` is the passwd entry's home directory, or `/`.
//!
//! Files are looked up inside the rootfs with symlinks resolved against the rootfs, so
//! an image's `/etc/passwd -> /host/file` symlink cannot read host files.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` (None = root). The error is a message naming the value.
pub(crate) fn resolve_user(rootfs: &Path, spec: Option<&str>) -> Result<ResolvedUser, String> {
    let spec = spec.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err("empty user name".into());
    }
    let passwd = read_in_root(rootfs, "/etc/passwd").map_err(|e| format!("reading /etc/passwd: {e}"))?;
    let passwd = passwd.as_deref().map(parse_passwd).unwrap_or_default();
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.into_iter().find(|e| e.uid == uid).or(Some(PasswdEntry {
            name: String::new(),
            uid,
            gid: 0,
            home: "/".into(),
        })),
        Err(_) => passwd.into_iter().find(|e| e.name == user_part),
    }
    .ok_or_else(|| format!("no user named {user_part:?} in the image's /etc/passwd"))?;

    let group = read_in_root(rootfs, "/etc/group").map_err(|e| format!("reading /etc/group: {e}"))?;
    let groups = group.as_deref().map(parse_group).unwrap_or_default();
    let (gid, additional_gids) = match group_part {
        Some("") => return Err("empty group name".into()),
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| format!("no group named {g:?} in the image's /etc/group"))?,
            };
            (gid, Vec::new())
        }
        None => {
            let mut extra: Vec<u32> = if entry.name.is_empty() {
                Vec::new()
            } else {
                groups.iter().filter(|g| g.members.contains(&entry.name)).map(|g| g.gid).collect()
            };
            extra.retain(|g| *g != entry.gid);
            extra.dedup();
            (entry.gid, extra)
        }
    };
    let home = if entry.home.is_empty() { "/".into() } else { entry.home };
    Ok(ResolvedUser { uid: entry.uid, gid, additional_gids, home })
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Reads `path` inside `root`; `Ok(None)` when it does not exist.
fn read_in_root(root: &Path, path: &str) -> io::Result<Option<String>> {
    let resolved = resolve_in_root(root, path)?;
    match fs::read(&resolved) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Resolves `path` as if `root` were `/`: `..` and absolute symlinks stop at `root`.
pub(crate) fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    const MAX_SYMLINKS: usize = 40;
    let mut pending: VecDeque<OsString> = components(Path::new(path));
    let mut current = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        let candidate = current.join(&part);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::other(format!("too many symlinks resolving {path}")));
                }
                let target = fs::read_link(&full)?;
                if target.is_absolute() {
                    current = PathBuf::new();
                }
                for (i, c) in components(&target).into_iter().enumerate() {
                    pending.insert(i, c);
                }
            }
            _ => current = candidate,
        }
    }
    Ok(root.join(current))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n# comment\nnohome:x:1002:1002::\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\napp:x:1001:\nwheel:x:10:root,app\naudio:x:29:app\n")
            .unwrap();
        dir
    }

    #[test]
    fn resolves_names_ids_and_groups() {
        let dir = rootfs();
        let r = |s: Option<&str>| resolve_user(dir.path(), s);
        assert_eq!(r(None).unwrap(), ResolvedUser { uid: 0, gid: 0, additional_gids: vec![10], home: "/root".into() });
        assert_eq!(
            r(Some("app")).unwrap(),
            ResolvedUser { uid: 1000, gid: 1001, additional_gids: vec![10, 29], home: "/home/app".into() }
        );
        assert_eq!(r(Some("1000")).unwrap().gid, 1001);
        assert_eq!(
            r(Some("app:audio")).unwrap(),
            ResolvedUser { uid: 1000, gid: 29, additional_gids: vec![], home: "/home/app".into() }
        );
        assert_eq!(r(Some("1000:5")).unwrap().gid, 5);
        // Unknown numeric uid: allowed, gid 0, home /.
        assert_eq!(
            r(Some("4242")).unwrap(),
            ResolvedUser { uid: 4242, gid: 0, additional_gids: vec![], home: "/".into() }
        );
        assert_eq!(r(Some("nohome")).unwrap().home, "/");
        assert!(r(Some("ghost")).unwrap_err().contains("\"ghost\""));
        assert!(r(Some("app:ghosts")).unwrap_err().contains("\"ghosts\""));
        assert!(r(Some("app:")).is_err());
    }

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let dir = rootfs();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
        fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        // An absolute symlink to a host path is resolved inside the rootfs (and missing there).
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(dir.path(), Some("evil")).is_err());
        let resolved = resolve_in_root(dir.path(), "/etc/../../../etc/passwd").unwrap();
        assert!(resolved.starts_with(dir.path()), "{resolved:?}");
    }
}
