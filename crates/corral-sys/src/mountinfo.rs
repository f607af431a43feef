//! The cgroup mounts of `/proc/<pid>/mountinfo` (or `/proc/mounts`), for the host probe, the
//! session cgroup and `corral setup`. Pure parsing of text handed in.

use std::fmt;

/// cgroup v1 (`cgroup`) or v2 (`cgroup2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A v1 hierarchy (`cgroup`).
    V1,
    /// The unified hierarchy (`cgroup2`).
    V2,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// A `cgroup` or `cgroup2` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// The directory of the hierarchy mounted here (`/` unless a subtree was mounted).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Superblock options; for v1 they name the controllers (`rw,memory`, `rw,cpu,cpuacct`).
    pub super_options: Vec<String>,
}

fn version(fstype: &str) -> Option<CgroupVersion> {
    match fstype {
        "cgroup" => Some(CgroupVersion::V1),
        "cgroup2" => Some(CgroupVersion::V2),
        _ => None,
    }
}

fn split_options(options: &str) -> Vec<String> {
    options.split(',').map(str::to_string).collect()
}

/// The cgroup mounts of mountinfo text (proc(5): `id parent major:minor root mount-point options
/// [optional fields…] - fstype source super-options`).
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|f| *f == "-")?;
            Some(CgroupMount {
                version: version(fields.get(separator + 1)?)?,
                root: unescape_mount_field(fields.get(3)?),
                mount_point: unescape_mount_field(fields.get(4)?),
                super_options: split_options(fields.get(separator + 3)?),
            })
        })
        .collect()
}

/// The cgroup mounts of `/proc/mounts` text (`source mount-point fstype options 0 0`), for when
/// mountinfo is missing; it does not say which subtree is mounted, so the root is taken as `/`.
pub fn cgroup_mounts_from_proc_mounts(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let _source = fields.next()?;
            let mount_point = unescape_mount_field(fields.next()?);
            let version = version(fields.next()?)?;
            Some(CgroupMount {
                version,
                root: "/".to_string(),
                mount_point,
                super_options: split_options(fields.next()?),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes in mount fields (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash; fs/proc_namespace.c `mangle`).
pub fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| u8::try_from(d.iter().fold(0_u32, |acc, c| acc * 8 + u32::from(c - b'0'))).ok());
        match octal {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_cgroup_mounts_with_escapes() {
        let text = "25 1 0:22 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n\
                    26 1 0:23 /sub /sys/fs/cgroup/my\\040dir rw shared:9 - cgroup2 cgroup2 rw\n\
                    27 1 0:24 / /proc rw - proc proc rw\n";
        assert_eq!(
            cgroup_mounts(text),
            vec![
                CgroupMount {
                    version: CgroupVersion::V1,
                    root: "/".into(),
                    mount_point: "/sys/fs/cgroup/memory".into(),
                    super_options: vec!["rw".into(), "memory".into()],
                },
                CgroupMount {
                    version: CgroupVersion::V2,
                    root: "/sub".into(),
                    mount_point: "/sys/fs/cgroup/my dir".into(),
                    super_options: vec!["rw".into()],
                },
            ]
        );
        assert_eq!(unescape_mount_field("a\\134b\\011c"), "a\\b\tc");
    }
}
