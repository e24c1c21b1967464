//! What `/proc/self/mountinfo` says is mounted where: the rootfs and the task storage both
//! ask it before mounting, so that a restarted agent reuses what is already there.

use std::fs;
use std::path::Path;

/// Unescapes the octal escapes (`\040` for space) of /proc/self/mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push(u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file system type mounted at `path`, if `path` is a mount point (topmost mount wins).
pub(crate) fn fs_type_at(path: &Path) -> std::io::Result<Option<String>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let wanted = path.to_string_lossy();
    let mut found = None;
    for line in info.lines() {
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else { continue };
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        if unescape(mount_point) == wanted {
            found = right.split(' ').next().map(str::to_string);
        }
    }
    Ok(found)
}
