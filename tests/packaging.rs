//! What the `.deb` and the systemd units promise: every asset `cargo deb` packs exists, the
//! package builds (cargo-deb, from the test build's binary; `.ci/run` installs it in
//! `.cache/cargo-deb`) with what README says it holds, the units load (`systemd-analyze verify`
//! with the built binary in place of /usr/bin/runnerctl) and are hardened
//! (`systemd-analyze security` below 4.0; `.ci/run` installs systemd).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn units() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("contrib/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "service" || e == "timer")
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_asset_of_the_deb_exists() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let deb = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("Cargo.toml has [package.metadata.deb]");
    // `["source", "target", "mode"],` lines of `assets`.
    let assets: Vec<(String, String)> = deb
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("[\"")?.strip_suffix("\"],")?;
            let mut parts = l.split("\", \"");
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect();
    assert!(assets.len() >= 10, "{assets:?}");
    let mut targets = Vec::new();
    for (source, target) in &assets {
        let source = source.as_str();
        targets.push(target.clone());
        if source.starts_with("target/") {
            continue; // built by `cargo deb`
        }
        if let Some(dir) = source.strip_suffix("*.1").or(source.strip_suffix("*.5")) {
            let ext = &source[source.len() - 1..];
            let found = std::fs::read_dir(root().join(dir))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == ext)
                })
                .count();
            assert!(found > 0, "no {source}");
            continue;
        }
        assert!(
            root().join(source).is_file(),
            "the .deb packs `{source}`, which is missing"
        );
    }
    for unit in units() {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            assets.iter().any(|(source, _)| source.ends_with(&name)),
            "the .deb lacks {name}"
        );
    }
    assert!(
        targets.iter().any(|t| t.contains("sysusers.d")),
        "the service user"
    );
    let scripts = deb
        .lines()
        .find_map(|l| l.strip_prefix("maintainer-scripts = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("maintainer-scripts");
    assert!(root().join(scripts).join("postinst").is_file());
    // The postinst is valid shell.
    let status = Command::new("sh")
        .arg("-n")
        .arg(root().join(scripts).join("postinst"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// The units name a user that the sysusers file makes, load their secrets from the
/// environment file, and the timer runs the health-check service.
#[test]
fn the_units_run_as_the_service_user_with_the_secrets_file() {
    let sysusers =
        std::fs::read_to_string(root().join("contrib/systemd/runnerctl.sysusers")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u runnerctl ")));
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        if unit.extension().unwrap() == "timer" {
            assert!(
                text.contains("OnUnitInactiveSec=10min"),
                "{}",
                unit.display()
            );
            assert!(root()
                .join("contrib/systemd")
                .join(
                    unit.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .replace(".timer", ".service")
                )
                .is_file());
            continue;
        }
        for line in [
            "User=runnerctl",
            "EnvironmentFile=/etc/runnerctl/env",
            "ExecStart=/usr/bin/runnerctl --config /etc/runnerctl/config.yaml ",
        ] {
            assert!(text.contains(line), "{} lacks {line}", unit.display());
        }
    }
    // The cron line that ran as root without the secrets is gone.
    assert!(!root().join("contrib/runnerctl-healthcheck.cron").exists());
}

fn systemd_analyze(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("systemd-analyze (the systemd package; .ci/run installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_units_are_hardened_below_an_exposure_of_4() {
    for unit in units() {
        if unit.extension().unwrap() != "service" {
            continue;
        }
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let (_, out) = systemd_analyze(
            &["security", "--offline=true", &name],
            unit.parent().unwrap(),
        );
        let level = out
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no exposure level for {name}: {out}"));
        assert!(level < 4.0, "{name} is rated {level}: {out}");
    }
}

#[test]
fn the_units_load() {
    let dir = tempfile::tempdir().unwrap();
    let bin = support::bin();
    for unit in units() {
        let text = std::fs::read_to_string(&unit)
            .unwrap()
            .replace("/usr/bin/runnerctl", &bin.to_string_lossy());
        std::fs::write(dir.path().join(unit.file_name().unwrap()), text).unwrap();
    }
    let names: Vec<String> = units()
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["verify", "--man=no"];
    args.extend(names.iter().map(String::as_str));
    let (ok, out) = systemd_analyze(&args, dir.path());
    // Only problems of our units count (the host's own units may have theirs).
    let ours: Vec<&str> = out.lines().filter(|l| l.starts_with("runnerctl")).collect();
    assert!(ok && ours.is_empty(), "{out}");
}

/// The .deb of the test build's binary, made once by `cargo deb` (stripped, as released; two
/// builds at once would write the same intermediate files), under target/.
fn build_deb() -> PathBuf {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(make_deb).clone()
}

fn make_deb() -> PathBuf {
    let cargo_deb = std::env::var_os("RUNNERCTL_CARGO_DEB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/cargo-deb/bin/cargo-deb"));
    assert!(
        cargo_deb.is_file(),
        "cargo-deb is not in .cache/cargo-deb (.ci/run installs it)"
    );
    let bin = support::bin(); // built by this test run
    assert!(bin.is_file());
    let out_dir = bin.parent().unwrap().join("deb-package");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(&cargo_deb)
        .args(["deb", "--profile", "dev", "--no-build", "--quiet", "-o"])
        .arg(&out_dir)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb")
}

/// `cargo deb` makes the package from the test build's binary; it holds the binary (which
/// runs), the units and timer, the service user, man pages, completions and the example, and
/// its maintainer scripts.
#[test]
fn cargo_deb_builds_the_package() {
    let deb = build_deb();
    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    for part in [
        "Package: runnerctl",
        "Depends: adduser, libc6",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(info.contains(part), "{part} in {info}");
    }
    let tree = tempfile::tempdir().unwrap();
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path())
        .status()
        .unwrap()
        .success());
    for path in [
        "usr/bin/runnerctl",
        "lib/systemd/system/runnerctl-serve.service",
        "lib/systemd/system/runnerctl-worker.service",
        "lib/systemd/system/runnerctl-healthcheck.service",
        "lib/systemd/system/runnerctl-healthcheck.timer",
        "usr/lib/sysusers.d/runnerctl.conf",
        "usr/share/man/man1/runnerctl.1.gz",
        "usr/share/man/man5/runnerctl.yaml.5.gz",
        "usr/share/bash-completion/completions/runnerctl",
        "usr/share/doc/runnerctl/config.example.yaml",
        "usr/share/runnerctl/config.example.yaml",
        "usr/share/doc/runnerctl/changelog.Debian.gz",
    ] {
        assert!(tree.path().join(path).is_file(), "the .deb lacks {path}");
    }
    let version = Command::new(tree.path().join("usr/bin/runnerctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("runnerctl "));
}

/// lintian finds no error and no warning in the package (its two overrides, in
/// contrib/debian/lintian-overrides, say why). It had `malformed-contact`, `no-changelog`, an
/// unexpanded `#DEBHELPER#`, adduser used but not depended on, systemctl called directly.
#[test]
fn lintian_finds_no_error_or_warning() {
    let deb = build_deb();
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--allow-root"])
        .arg(&deb)
        .output()
        .expect("lintian (.ci/run installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "{text}"
    );
}

/// In a slim Debian (whose dpkg drops /usr/share/doc, as container images do), the package
/// installs (the service user, /etc/runnerctl with the example configuration and a root-only
/// env file), its binary runs, and a purge leaves neither the user nor /etc/runnerctl. The
/// postinst copied the example from /usr/share/doc and failed there.
#[test]
fn the_deb_installs_and_purges_in_a_slim_debian() {
    let deb = build_deb();
    let image = support::debian_image();
    let script = r#"set -e
printf 'path-exclude /usr/share/doc/*\n' > /etc/dpkg/dpkg.cfg.d/excludes
dpkg -i /tmp/runnerctl.deb
getent passwd runnerctl
test -f /etc/runnerctl/config.yaml
test "$(stat -c %a:%U:%G /etc/runnerctl/env)" = 600:root:root
test "$(stat -c %a:%U:%G /etc/runnerctl)" = 750:root:runnerctl
test ! -e /usr/share/doc/runnerctl/config.example.yaml
runnerctl --version
dpkg --purge runnerctl
if getent passwd runnerctl; then echo "the user is left"; exit 1; fi
if getent group runnerctl; then echo "the group is left"; exit 1; fi
test ! -e /etc/runnerctl
echo PURGED
"#;
    let mount = format!("{}:/tmp/runnerctl.deb:ro", deb.display());
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &mount,
            image,
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("PURGED"), "{text}");
}
