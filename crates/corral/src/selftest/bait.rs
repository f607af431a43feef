//! The bait `corral selftest` plants outside the sandbox: a fake home with fake keys at every
//! built-in secret path, a project with a git repository, rc files and tools, files in the host's
//! /tmp and /dev/shm, listening services (TCP, UDP, DNS, unix sockets, an open proxy for the
//! control run) that record what reaches them, and a sentinel process. All of it is removed by
//! [`Scratch`]'s drop.

use super::attacks::writes::{planted_suffix, BAIT_MTIME, HOME_FILES};
use super::brief::Mode;
use anyhow::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the listeners received, shared with their threads.
pub type Inbox = Arc<Mutex<Vec<String>>>;

/// The scratch directory and the files outside it; removed on drop.
#[derive(Debug)]
pub struct Scratch {
    /// The directory (mode 0700).
    pub root: PathBuf,
    /// Files planted outside `root` (in /tmp, /dev/shm), with the names attacks may create next
    /// to them.
    pub outside_files: Vec<PathBuf>,
}

impl Scratch {
    /// A new scratch directory under the temporary directory.
    pub fn create(token: &str) -> anyhow::Result<Scratch> {
        let base = std::env::temp_dir();
        let root = base.join(format!("corral-selftest-{}", &token[..12]));
        std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Scratch {
            root,
            outside_files: Vec::new(),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Attacks may have left read-only files or directories behind (the control run's chmod).
        make_writable(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
        for f in &self.outside_files {
            let _ = std::fs::remove_file(f);
            for mode in [Mode::Control, Mode::Sandbox] {
                let mut planted = f.as_os_str().to_owned();
                planted.push(planted_suffix(mode));
                let _ = std::fs::remove_file(PathBuf::from(planted));
            }
        }
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&e.path());
            }
        }
    }
}

/// A random hex token (16 bytes from the kernel).
pub fn token() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(BAIT_MTIME.unsigned_abs());
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .with_context(|| format!("setting the mtime of {}", path.display()))?;
    Ok(())
}

/// A bait tree: `dir/home` with the fake secrets and rc files, `dir/home/project` with a git
/// repository, `dir/outside`.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The fake home.
    pub home: PathBuf,
    /// The project.
    pub workspace: PathBuf,
    /// Outside both.
    pub outside: PathBuf,
    /// (name as listed, bait file).
    pub secrets: Vec<(String, PathBuf)>,
}

/// Plants a tree under `dir`.
pub fn plant(dir: &Path, token: &str) -> anyhow::Result<Tree> {
    let home = dir.join("home");
    let workspace = home.join("project");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside)?;
    let mut secrets = Vec::new();
    for entry in corral_core::secrets::SECRET_PATHS {
        let Some(rel) = entry.strip_prefix("~/") else {
            continue;
        };
        let path = home.join(rel);
        // A file entry gets the bait as the file itself; a directory entry a key file inside.
        let name = Path::new(rel).file_name().and_then(|n| n.to_str()).unwrap_or("");
        let looks_like_file = name.trim_start_matches('.').contains('.')
            || name.contains("credentials")
            || [".netrc", ".npmrc", ".pypirc", ".vault-token"].contains(&name);
        let file = if looks_like_file {
            path
        } else {
            path.join("id_ed25519")
        };
        write(
            &file,
            &format!("-----BEGIN FAKE KEY-----\n{token}\n-----END FAKE KEY-----\n"),
            0o600,
        )?;
        secrets.push((entry.to_string(), file));
    }
    write(
        &home.join(".ssh/authorized_keys"),
        &format!("ssh-ed25519 AAAA{token} bait\n"),
        0o600,
    )?;
    for (rel, text) in HOME_FILES {
        let mode = if rel.contains("/bin/") { 0o755 } else { 0o644 };
        write(&home.join(rel), text, mode)?;
    }
    // The project: a git repository as `git init` makes it, and a .env the deny list masks.
    let git = workspace.join(".git");
    for d in ["hooks", "objects", "refs/heads", "info"] {
        std::fs::create_dir_all(git.join(d))?;
    }
    std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n")?;
    std::fs::write(
        git.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n",
    )?;
    std::fs::write(git.join("hooks/pre-commit.sample"), "#!/bin/sh\nexit 0\n")?;
    std::fs::write(workspace.join(".env"), format!("API_KEY={token}\n"))?;
    std::fs::write(workspace.join("README.md"), "corral selftest project\n")?;
    Ok(Tree {
        home,
        workspace,
        outside,
        secrets,
    })
}

/// Plants a bait file outside the scratch directory (in /tmp or /dev/shm) and records it for
/// removal.
pub fn plant_outside(scratch: &mut Scratch, dir: &str, name: &str, token: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(dir).join(name);
    scratch.outside_files.push(path.clone());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{token}")?;
    Ok(path)
}

/// Records every line a stream sends (at most 64 KiB), then closes it.
fn record_stream(mut s: impl Read, inbox: &Inbox) {
    let mut buf = Vec::new();
    let _ = s.by_ref().take(64 << 10).read_to_end(&mut buf);
    if let Ok(mut v) = inbox.lock() {
        v.push(String::from_utf8_lossy(&buf).into_owned());
    }
}

/// How long a bait connection may stay silent before it is recorded and closed.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves connections on a thread: `accept` gives the next one (None ends it), and what each
/// sends is recorded in `inbox`.
fn record_connections<S: Read + Send + 'static>(
    mut accept: impl FnMut() -> Option<S> + Send + 'static,
    inbox: &Inbox,
) {
    let inbox = inbox.clone();
    std::thread::spawn(move || {
        while let Some(s) = accept() {
            let inbox = inbox.clone();
            std::thread::spawn(move || record_stream(s, &inbox));
        }
    });
}

/// A TCP listener on `addr` that records what each connection sends.
pub fn tcp_listener(addr: &str, inbox: &Inbox) -> Option<u16> {
    let l = std::net::TcpListener::bind(addr).ok()?;
    let port = l.local_addr().ok()?.port();
    record_connections(
        move || {
            let (s, _) = l.accept().ok()?;
            s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
            Some(s)
        },
        inbox,
    );
    Some(port)
}

/// A unix listener (pathname or abstract) that records what each connection sends.
pub fn unix_listener(addr: &std::os::unix::net::SocketAddr, inbox: &Inbox) -> anyhow::Result<()> {
    let l = std::os::unix::net::UnixListener::bind_addr(addr).context("binding a bait unix socket")?;
    record_connections(
        move || {
            let (s, _) = l.accept().ok()?;
            s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
            Some(s)
        },
        inbox,
    );
    Ok(())
}

/// A UDP socket that records every datagram.
pub fn udp_listener(inbox: &Inbox) -> anyhow::Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").context("binding the bait UDP socket")?;
    let port = s.local_addr()?.port();
    let inbox = inbox.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = s.recv(&mut buf) {
            if let Ok(mut v) = inbox.lock() {
                v.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    Ok(port)
}

/// A DNS server that records each query's name (`dns NAME`) and answers it with 127.0.0.2.
pub fn dns_server(inbox: &Inbox) -> anyhow::Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").context("binding the bait DNS server")?;
    let port = s.local_addr()?.port();
    let inbox = inbox.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let q = &buf[..n];
            let Some((name, end)) = qname(q) else { continue };
            if let Ok(mut v) = inbox.lock() {
                v.push(format!("dns {name}"));
            }
            // Header: same id, response + recursion available, one question, one answer.
            let mut r = vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
            r.extend_from_slice(&q[12..end + 4]);
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2]);
            let _ = s.send_to(&r, from);
        }
    });
    Ok(port)
}

/// The question name of a DNS query and the offset just past it.
fn qname(q: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(at)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
    (q.len() >= at + 5).then(|| (labels.join("."), at + 1))
}

/// The control run's proxy: answers 200 to every CONNECT and records what comes after, so the
/// proxy attacks can show they tell success from refusal.
pub fn open_proxy(inbox: &Inbox) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding the control proxy")?;
    let port = l.local_addr()?.port();
    let inbox = inbox.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(READ_TIMEOUT));
                let mut r = BufReader::new(&s);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                    }
                }
                let _ = (&s).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let mut rest = String::new();
                let _ = r.take(64 << 10).read_to_string(&mut rest);
                if let Ok(mut v) = inbox.lock() {
                    v.push(format!("{head}{rest}"));
                }
            });
        }
    });
    Ok(port)
}

/// The bait services, shared by every run.
pub(super) struct Services {
    pub(super) inbox: Inbox,
    pub(super) tcp_port: u16,
    pub(super) tcp6_port: Option<u16>,
    pub(super) udp_port: u16,
    pub(super) dns_port: u16,
    pub(super) proxy_port: u16,
    pub(super) abstract_name: String,
    pub(super) unix_path: PathBuf,
    pub(super) ssh_agent: PathBuf,
    pub(super) host_tmp_file: PathBuf,
    pub(super) host_shm_file: PathBuf,
}

impl Services {
    pub(super) fn start(scratch: &mut Scratch, token: &str) -> anyhow::Result<Services> {
        let inbox = Inbox::default();
        let tcp_port = tcp_listener("127.0.0.1:0", &inbox).context("binding the bait TCP listener")?;
        let tcp6_port = tcp_listener("[::1]:0", &inbox);
        let udp_port = udp_listener(&inbox)?;
        let dns_port = dns_server(&inbox)?;
        let proxy_port = open_proxy(&inbox)?;
        let sockets = scratch.root.join("sockets");
        std::fs::create_dir(&sockets)?;
        let abstract_name = format!("corral-selftest-{}", &token[..12]);
        {
            use std::os::linux::net::SocketAddrExt;
            unix_listener(
                &std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
                &inbox,
            )?;
        }
        let unix_path = sockets.join("service.sock");
        unix_listener(
            &std::os::unix::net::SocketAddr::from_pathname(&unix_path)?,
            &inbox,
        )?;
        let ssh_agent = sockets.join("agent.sock");
        unix_listener(
            &std::os::unix::net::SocketAddr::from_pathname(&ssh_agent)?,
            &inbox,
        )?;
        let name = format!("corral-selftest-{}-bait", &token[..12]);
        let host_tmp_file = plant_outside(scratch, "/tmp", &name, token)?;
        let host_shm_file = if Path::new("/dev/shm").is_dir() {
            plant_outside(scratch, "/dev/shm", &name, token)?
        } else {
            plant_outside(scratch, &scratch.root.display().to_string(), "shm-bait", token)?
        };
        Ok(Services {
            inbox,
            tcp_port,
            tcp6_port,
            udp_port,
            dns_port,
            proxy_port,
            abstract_name,
            unix_path,
            ssh_agent,
            host_tmp_file,
            host_shm_file,
        })
    }

    pub(super) fn received(&self) -> Vec<String> {
        self.inbox.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The variables the bait puts in the launcher's environment.
pub(super) fn bait_env(cmd: &mut std::process::Command, token: &str, s: &Services) {
    for name in super::attacks::secrets::BAIT_VARS {
        cmd.env(name, format!("bait-{token}"));
    }
    cmd.env("SSH_AUTH_SOCK", &s.ssh_agent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bait_dns_server_reads_the_name_the_attacker_asks_for() {
        let q = crate::selftest::attacks::net::dns_query("abc123-raw.selftest.invalid");
        let (name, end) = qname(&q).unwrap();
        assert_eq!(name, "abc123-raw.selftest.invalid");
        assert_eq!(&q[end..], &[0, 1, 0, 1]);
        assert_eq!(qname(&q[..q.len() - 3]), None, "a cut-off question");
    }
}
