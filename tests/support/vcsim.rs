//! govmomi's vCenter simulator (`tests/vcsim/main.go`, built by `.ci/run` from Debian's
//! `golang-github-vmware-govmomi-dev` into the ignored `.cache/vcsim`), one process per test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

pub const USER: &str = "runnerctl";
pub const PASSWORD: &str = "vcsim-pass";
/// The simulator's VPX inventory, as the tests use it.
pub const TEMPLATE: &str = "/DC0/vm/DC0_H0_VM0";
pub const FOLDER: &str = "/DC0/vm/runners";
pub const POOL: &str = "/DC0/host/DC0_C0/Resources";
pub const DATASTORE: &str = "/DC0/datastore/LocalDS_0";
pub const NETWORK: &str = "/DC0/network/VM Network";
pub const PORTGROUP: &str = "/DC0/network/DC0_DVPG0";

pub struct Vcsim {
    /// The SDK URL without the user and password.
    pub url: String,
    /// With `-tls`, the SHA-256 of its certificate (hex).
    pub thumbprint: Option<String>,
    child: Child,
    _stdin: ChildStdin,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("RUNNERCTL_VCSIM") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/vcsim/vcsim")
}

impl Vcsim {
    pub fn start() -> Vcsim {
        Vcsim::with_args(&[])
    }

    /// A simulator with flags: `-idle 1s` (sessions expire), `-tls`, `-ip-delay 2s`.
    pub fn with_args(args: &[&str]) -> Vcsim {
        let mut child = Command::new(binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("RUNNERCTL_VCSIM_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the vCenter simulator must be built in .cache/vcsim (.ci/run does it)");
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line.trim().replacen(&format!("{USER}:{PASSWORD}@"), "", 1);
        assert!(url.ends_with("/sdk"), "the simulator printed {line:?}");
        let thumbprint = args.contains(&"-tls").then(|| {
            let mut t = String::new();
            out.read_line(&mut t).unwrap();
            t.trim().to_string()
        });
        Vcsim {
            url,
            thumbprint,
            child,
            _stdin: stdin,
        }
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
