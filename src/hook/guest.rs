//! systemd-nspawn guests: a writable root over a cached image (an overlay, or a copy where
//! overlayfs is not available), commands run in it, service guests in the background, and the
//! sweep that leaves nothing of a job behind (processes, mounts, directories).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::image::Image;
use super::protocol::{Guest, Mount};
use super::{tool, HookError, Settings};

/// A machine name from `parts`: lower-case letters, digits and dashes, at most 64.
pub fn machine_name(parts: &[&str]) -> String {
    let raw = parts.join("-").to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.truncate(64);
    name.trim_matches('-').to_string()
}

/// Makes `dir/root` a writable root over the image: an overlay (upper and work beside it), or
/// a copy where the kernel or filesystem refuses the overlay.
pub fn make_root(image: &Image, dir: &Path) -> Result<PathBuf, HookError> {
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for d in [&upper, &work, &root] {
        std::fs::create_dir_all(d)
            .map_err(|e| HookError::io(format!("creating {}", d.display()), e))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        image.rootfs.display(),
        upper.display(),
        work.display()
    );
    let overlay = tool::run(
        "mount",
        &[
            "-t".into(),
            "overlay".into(),
            "overlay".into(),
            "-o".into(),
            options,
            root.display().to_string(),
        ],
        &[],
    );
    if overlay.is_err() {
        let src = format!("{}/.", image.rootfs.display());
        tool::run(
            "cp",
            &[
                "-a".into(),
                "--reflink=auto".into(),
                src,
                root.display().to_string(),
            ],
            &[],
        )?;
    }
    // systemd-nspawn wants an OS tree (a /usr); small images (busybox) have none.
    let dirfd = in_root::open_root(&root)?;
    for d in ["usr", "etc", "tmp"] {
        in_root::ensure_dir(&dirfd, &root, d)?;
    }
    Ok(root)
}

/// Files of a guest's root, which an image made: the kernel resolves every path as if the
/// root were `/` (`openat2` with `RESOLVE_IN_ROOT`), so an image's symbolic links (absolute or
/// `..`) never lead to a file of the host, and only regular files are read or written (an
/// image may carry device nodes and FIFOs).
mod in_root {
    use std::os::fd::OwnedFd;
    use std::path::Path;

    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

    use crate::hook::HookError;

    const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

    /// The root directory itself, as the anchor of every look-up in it.
    pub fn open_root(root: &Path) -> Result<OwnedFd, HookError> {
        rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| HookError::io(format!("opening {}", root.display()), e.into()))
    }

    /// Makes the top-level directory `name` unless something of that name is there already
    /// (whatever it is: a link is left as the image made it, never followed).
    pub fn ensure_dir(dirfd: &OwnedFd, root: &Path, name: &str) -> Result<(), HookError> {
        debug_assert!(!name.contains('/'));
        match rustix::fs::mkdirat(dirfd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(HookError::io(
                format!("creating {}", root.join(name).display()),
                e.into(),
            )),
        }
    }

    /// Opens `rel` in the root: read and write, created (mode 644) when `create`. `Ok(None)`
    /// when it does not exist.
    pub fn open_file(
        root: &Path,
        rel: &str,
        create: bool,
    ) -> Result<Option<std::fs::File>, HookError> {
        let what = || format!("/{rel} of the guest at {}", root.display());
        let dirfd = open_root(root)?;
        let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        if create {
            flags |= OFlags::CREATE;
        }
        let fd = match rustix::fs::openat2(&dirfd, rel, flags, Mode::from_raw_mode(0o644), RESOLVE)
        {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
            Err(e) => return Err(HookError::io(format!("opening {}", what()), e.into())),
        };
        let stat = rustix::fs::fstat(&fd)
            .map_err(|e| HookError::io(format!("reading {}", what()), e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(HookError::BadInput(format!(
                "{} is not a regular file: the hook does not touch it",
                what()
            )));
        }
        // Back to blocking reads and writes for a regular file.
        rustix::fs::fcntl_setfl(&fd, flags & !(OFlags::NONBLOCK | OFlags::CREATE))
            .map_err(|e| HookError::io(format!("opening {}", what()), e.into()))?;
        Ok(Some(std::fs::File::from(fd)))
    }

    /// Whether `rel` exists in the root, links resolved inside it.
    pub fn exists(root: &Path, rel: &str) -> bool {
        let Ok(dirfd) = open_root(root) else {
            return false;
        };
        rustix::fs::openat2(
            &dirfd,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .is_ok()
    }
}

/// Whether the image is Alpine (the runner then uses its musl builds of node).
pub fn is_alpine(root: &Path) -> bool {
    in_root::exists(root, "etc/alpine-release")
}

/// Makes services reachable by their context name, as on Docker's job network: guests share
/// the VM's network, so each name is the loopback address. The guest's `/etc/hosts` is opened
/// inside its root: an image's link there cannot make the hook write a file of the host.
pub fn add_hosts(root: &Path, names: &[&str]) -> Result<(), HookError> {
    use std::io::{Read, Seek};
    if names.is_empty() {
        return Ok(());
    }
    let what = || format!("/etc/hosts of the guest at {}", root.display());
    let Some(mut file) = in_root::open_file(root, "etc/hosts", true)? else {
        return Err(HookError::Tool(format!("{} could not be made", what())));
    };
    let mut text = String::new();
    // An unreadable (binary) file is replaced.
    if file.read_to_string(&mut text).is_err() {
        text.clear();
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.contains("localhost") {
        text.push_str("127.0.0.1 localhost\n");
    }
    for n in names {
        text.push_str(&format!("127.0.0.1 {n}\n"));
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .map_err(|e| HookError::io(format!("writing {}", what()), e))
}

/// The mounts as `--bind`/`--bind-ro` options. A named volume (a source that is not a path)
/// becomes a directory of the job; a host path that does not exist is left out with a note
/// (the runner's examples name Docker's socket, which an nspawn host has not).
pub fn bind_options(mounts: &[Mount], job_dir: &Path) -> Result<Vec<String>, HookError> {
    let mut out = Vec::new();
    for m in mounts {
        let target = &m.target_volume_path;
        if !target.starts_with('/') || target.contains(':') || m.source_volume_path.contains(':') {
            return Err(HookError::BadInput(format!(
                "cannot mount `{}` at `{target}`: paths must be absolute and without `:`",
                m.source_volume_path
            )));
        }
        let source = if m.source_volume_path.starts_with('/') {
            let p = PathBuf::from(&m.source_volume_path);
            if !p.exists() {
                eprintln!(
                    "runnerctl: not mounting {} at {target}: it does not exist on this host",
                    p.display()
                );
                continue;
            }
            p
        } else {
            let name = machine_name(&[&m.source_volume_path]);
            let p = job_dir
                .join("volumes")
                .join(if name.is_empty() { "volume" } else { &name });
            std::fs::create_dir_all(&p)
                .map_err(|e| HookError::io(format!("creating {}", p.display()), e))?;
            p
        };
        let flag = if m.read_only { "--bind-ro" } else { "--bind" };
        out.push(format!("{flag}={}:{target}", source.display()));
    }
    Ok(out)
}

/// The environment a command gets: the guest's, then `extra` (later wins), with `prepend`
/// before PATH.
pub fn environment(
    base: &[(String, String)],
    extra: &[(String, String)],
    prepend: &[String],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in base.iter().chain(extra) {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), v.clone()));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let path = prepend
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .chain(std::iter::once(path))
        .collect::<Vec<_>>()
        .join(":");
    env.retain(|(k, _)| k != "PATH");
    env.push(("PATH".into(), path));
    env
}

/// How `systemd-nspawn` is started for a command: its arguments and the variables set in its
/// own environment, which `--setenv=NAME` (no value) hands on to the guest. A job's values
/// (secrets among them) never stand on a command line, which every process of the VM can read
/// in `/proc/PID/cmdline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nspawn {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Variables that would change what `systemd-nspawn` itself does on the host (the dynamic
/// loader's, glibc's and systemd's own): they are not put in its environment, and reach the
/// guest on the command line instead. They name paths and settings, not secrets.
fn host_sensitive(name: &str) -> bool {
    const PREFIXES: [&str; 5] = ["LD_", "MALLOC_", "SYSTEMD_", "LISTEN_", "LC_"];
    const NAMES: [&str; 16] = [
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TMPDIR",
        "TZDIR",
        "NOTIFY_SOCKET",
        "PATH",
        "LANG",
        "LANGUAGE",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// `systemd-nspawn`'s invocation for running `argv` in `guest`. A variable whose name or value
/// the environment cannot carry is refused by name.
pub fn nspawn_args(
    guest: &Guest,
    binds: &[String],
    env: &[(String, String)],
    workdir: Option<&str>,
    argv: &[String],
) -> Result<Nspawn, HookError> {
    let mut a = vec![
        "--quiet".to_string(),
        "--register=no".into(),
        "--keep-unit".into(),
        "--console=pipe".into(),
        "--link-journal=no".into(),
        format!("--machine={}", guest.name),
        format!("--directory={}", guest.root),
    ];
    a.extend(binds.iter().cloned());
    let mut passed = Vec::new();
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(HookError::BadInput(format!(
                "environment variable `{}` cannot be set: a name is not empty and has no `=` or NUL, a value has no NUL",
                k.replace('\0', "\\0")
            )));
        }
        if host_sensitive(k) {
            a.push(format!("--setenv={k}={v}"));
        } else {
            a.push(format!("--setenv={k}"));
            passed.push((k.clone(), v.clone()));
        }
    }
    if let Some(w) = workdir {
        a.push(format!("--chdir={w}"));
    }
    a.push("--".into());
    a.extend(argv.iter().cloned());
    Ok(Nspawn {
        args: a,
        env: passed,
    })
}

/// nspawn's complaint, on hosts whose /run is not a tmpfs, that it will not remove its
/// propagation directory: noise in a step's log.
fn is_nspawn_noise(line: &str) -> bool {
    line.starts_with("Attempted to remove disk file system under \"/run/systemd/nspawn/")
}

/// Runs `systemd-nspawn args` in the foreground: the step's output is the command's own (its
/// standard error without nspawn's noise); its exit status is returned.
pub fn run(settings: &Settings, invocation: &Nspawn) -> Result<i32, HookError> {
    let mut child = Command::new(&settings.nspawn)
        .args(&invocation.args)
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool::spawn_error(&settings.nspawn, e))?;
    if let Some(err) = child.stderr.take() {
        let mut out = std::io::stderr().lock();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if !is_nspawn_noise(&line) {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| HookError::io("waiting for systemd-nspawn", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Starts a service guest in the background (its own process group, output to `log`) and
/// returns its nspawn's PID once it has stayed up for a moment.
pub fn start(settings: &Settings, invocation: &Nspawn, log: &Path) -> Result<u32, HookError> {
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::create(log)
        .map_err(|e| HookError::io(format!("creating {}", log.display()), e))?;
    let err = file
        .try_clone()
        .map_err(|e| HookError::io(format!("opening {}", log.display()), e))?;
    let mut child = Command::new(&settings.nspawn)
        .args(&invocation.args)
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| tool::spawn_error(&settings.nspawn, e))?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    if let Ok(Some(status)) = child.try_wait() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last: Vec<&str> = text.lines().filter(|l| !is_nspawn_noise(l)).collect();
        return Err(HookError::Tool(format!(
            "the service exited at once ({status}): {}",
            last.iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        )));
    }
    Ok(child.id())
}

/// The PIDs of what still runs in a job's guests: processes whose root or working directory
/// lies under `dir` as this namespace sees it, and the `systemd-nspawn`s of guests rooted there
/// (their payloads live in mount namespaces of their own, where the root reads as `/`).
fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            ["root", "cwd"].iter().any(|l| {
                std::fs::read_link(format!("/proc/{pid}/{l}")).is_ok_and(|p| p.starts_with(dir))
            }) || nspawn_root(*pid).is_some_and(|r| Path::new(&r).starts_with(dir))
        })
        .collect()
}

/// The root of the guest `pid` runs, when it is a `systemd-nspawn`.
fn nspawn_root(pid: u32) -> Option<String> {
    let c = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = c
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.first().is_some_and(|a| a.ends_with("systemd-nspawn")) {
        return None;
    }
    args.iter()
        .find_map(|a| a.strip_prefix("--directory=").map(String::from))
}

/// Whether `pid` is a `systemd-nspawn` of the guest rooted at `root` (a PID from the runner's
/// state may have been reused).
fn is_guest(pid: u32, root: &str) -> bool {
    nspawn_root(pid).is_some_and(|r| r == root)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops a service guest: TERM to its nspawn (which stops the guest), KILL after 10 s.
pub fn stop(guest: &Guest) {
    let Some(pid) = guest.pid else { return };
    if !is_guest(pid, &guest.root) {
        return;
    }
    signal(pid, "TERM");
    for _ in 0..100 {
        if !is_guest(pid, &guest.root) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    signal(pid, "KILL");
}

/// The mount points at or under `dir`, deepest first, from this namespace's mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Removes everything of the job at `dir`: kills what still runs there, unmounts what is
/// mounted there, then removes the directory without crossing into another filesystem.
/// Idempotent: a directory that is gone is done.
pub fn sweep(dir: &Path) -> Result<(), HookError> {
    if !dir.exists() {
        return Ok(());
    }
    // TERM first (nspawn stops its guest), then KILL.
    for round in 0..50 {
        let left = processes_under(dir);
        if left.is_empty() {
            break;
        }
        for pid in left {
            signal(pid, if round < 20 { "TERM" } else { "KILL" });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for m in mounts_under(dir) {
        let arg = m.display().to_string();
        if tool::run("umount", std::slice::from_ref(&arg), &[]).is_err() {
            tool::run("umount", &["-l".into(), arg], &[])?;
        }
    }
    if let Some(m) = mounts_under(dir).first() {
        return Err(HookError::Tool(format!(
            "{} is still mounted: the job's directory is kept",
            m.display()
        )));
    }
    tool::run(
        "rm",
        &[
            "-rf".into(),
            "--one-file-system".into(),
            dir.display().to_string(),
        ],
        &[],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_are_valid_hostnames() {
        assert_eq!(
            machine_name(&["rc", "Job_1", "redis.db"]),
            "rc-job-1-redis-db"
        );
        assert!(machine_name(&["x"; 40]).len() <= 64);
    }

    #[test]
    fn the_environment_layers_and_prepends_path() {
        let base = vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())];
        let extra = vec![("A".into(), "2".into())];
        let env = environment(&base, &extra, &["/foo/bar".into(), "bar/foo".into()]);
        assert!(env.contains(&("A".into(), "2".into())));
        assert!(env.contains(&("PATH".into(), "/foo/bar:bar/foo:/bin".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    }

    #[test]
    fn mounts_become_binds_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("work");
        std::fs::create_dir(&host).unwrap();
        let m = |s: &str, t: &str, ro| Mount {
            source_volume_path: s.into(),
            target_volume_path: t.into(),
            read_only: ro,
        };
        let binds = bind_options(
            &[
                m(host.to_str().unwrap(), "/__w", false),
                m(host.to_str().unwrap(), "/__e", true),
                m("my_docker_volume", "/volume_mount", false),
                m("/var/run/nonexistent.sock", "/var/run/docker.sock", false),
            ],
            dir.path(),
        )
        .unwrap();
        assert_eq!(binds.len(), 3, "{binds:?}");
        assert_eq!(binds[0], format!("--bind={}:/__w", host.display()));
        assert!(binds[1].starts_with("--bind-ro="));
        assert!(dir.path().join("volumes/my-docker-volume").is_dir());
        assert!(bind_options(&[m("/a", "relative", false)], dir.path()).is_err());
        assert!(bind_options(&[m("/a:b", "/x", false)], dir.path()).is_err());
    }

    #[test]
    fn an_image_s_etc_hosts_link_cannot_write_a_host_file() {
        let dir = tempfile::tempdir().unwrap();
        let host_file = dir.path().join("host-file");
        std::fs::write(&host_file, "host\n").unwrap();
        for link in [
            host_file.display().to_string(),
            // `..` as far as it goes, then the host's path.
            format!("../../../../../../..{}", host_file.display()),
        ] {
            let root = dir.path().join(format!("root-{}", link.len()));
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::os::unix::fs::symlink(&link, root.join("etc/hosts")).unwrap();
            // Where the link leads inside the root does not exist: refused, nothing written.
            assert!(add_hosts(&root, &["redis"]).is_err());
            assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n");
            // Where it does, the link is followed inside the guest's root.
            let inside = root.join(host_file.strip_prefix("/").unwrap());
            std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
            add_hosts(&root, &["redis"]).unwrap();
            assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n");
            let text = std::fs::read_to_string(&inside).unwrap();
            assert!(text.contains("127.0.0.1 redis"), "{text}");
        }
        // A directory of the host named by an absolute link is not where files are made.
        let root = dir.path().join("root-dirlink");
        std::fs::create_dir_all(&root).unwrap();
        let host_etc = dir.path().join("host-etc");
        std::fs::create_dir_all(&host_etc).unwrap();
        std::os::unix::fs::symlink(&host_etc, root.join("etc")).unwrap();
        assert!(add_hosts(&root, &["db"]).is_err());
        assert!(!host_etc.join("hosts").exists());
        assert!(!is_alpine(&root));
    }

    #[test]
    fn an_image_s_etc_hosts_that_is_no_regular_file_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/hosts"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = add_hosts(&root, &["redis"]).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn job_secrets_never_stand_on_nspawn_s_command_line() {
        let g = Guest {
            name: "rc-1".into(),
            root: "/r".into(),
            mounts: vec![],
            env: vec![],
            workdir: None,
            pid: None,
        };
        let env = vec![
            ("GITHUB_TOKEN".to_string(), "ghs_secret_value".to_string()),
            ("PATH".into(), "/bin".into()),
            ("LD_PRELOAD".into(), "/x.so".into()),
        ];
        let n = nspawn_args(&g, &[], &env, None, &["sh".into()]).unwrap();
        let line = n.args.join(" ");
        assert!(!line.contains("ghs_secret_value"), "{line}");
        assert!(n.args.contains(&"--setenv=GITHUB_TOKEN".to_string()));
        assert_eq!(
            n.env,
            vec![("GITHUB_TOKEN".to_string(), "ghs_secret_value".to_string())]
        );
        // What would change nspawn's own behaviour on the host stays out of its environment.
        assert!(n.args.contains(&"--setenv=LD_PRELOAD=/x.so".to_string()));
        assert!(n.args.contains(&"--setenv=PATH=/bin".to_string()));
        let bad = vec![("A=B".to_string(), "x".to_string())];
        let e = nspawn_args(&g, &[], &bad, None, &["sh".into()]).unwrap_err();
        assert!(e.to_string().contains("`A=B`"), "{e}");
    }
}
