//! `runnerctl container-hook` with the real tools (issue 16): Debian's systemd-nspawn, skopeo,
//! umoci and Node.js, installed by `.ci/run`. No registry is reachable, so the test images are
//! made here with umoci from busybox-static and preloaded in an OCI layout. GitHub's three
//! example inputs (tests/fixtures/container-hooks, host paths replaced) go through the
//! JavaScript entry point, as the runner would send them.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a busybox image tagged `name` in the OCI layout `images`, with a web root for the
/// service test.
fn make_image(work: &Path, images: &Path, name: &str) {
    let layout = work.join("build");
    let l = layout.to_str().unwrap();
    if !layout.exists() {
        sh("umoci", &["init", "--layout", l]);
    }
    sh("umoci", &["new", "--image", &format!("{l}:bb")]);
    let bundle = work.join("bundle");
    let b = bundle.to_str().unwrap();
    let _ = std::fs::remove_dir_all(&bundle);
    sh("umoci", &["unpack", "--image", &format!("{l}:bb"), b]);
    let root = bundle.join("rootfs");
    for d in ["bin", "www", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "env", "ls", "touch", "sleep", "httpd", "wget", "pwd", "id",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "served by the service guest\n").unwrap();
    sh("umoci", &["repack", "--image", &format!("{l}:bb"), b]);
    sh(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{l}:bb"),
            "--config.env",
            "PATH=/bin",
            "--config.env",
            "IMAGE_VAR=from-image",
            "--config.cmd",
            "/bin/sh",
        ],
    );
    sh(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{l}:bb"),
            &format!("oci:{}:{name}", images.display()),
        ],
    );
}

struct Host {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    hook_dir: PathBuf,
    images: PathBuf,
    work: PathBuf,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let images = root.join("images");
        make_image(&root, &images, "busybox:test");
        let work = root.join("runner/_work");
        for d in [
            "repo/repo",
            "_temp/_github_home",
            "_temp/_github_workflow",
            "_actions",
            "_tool",
        ] {
            std::fs::create_dir_all(work.join(d)).unwrap();
        }
        std::fs::create_dir_all(root.join("runner/externals")).unwrap();
        Host {
            hook_dir: root.join("hook"),
            root,
            images,
            work,
            _tmp: tmp,
        }
    }

    /// Host paths of GitHub's examples, replaced with this host's.
    fn localize(&self, text: &str) -> String {
        let layout = self.root.join("runner").display().to_string();
        text.replace("//Users/thomas/git/runner/_layout", &layout)
            .replace("/Users/thomas/git/runner/_layout", &layout)
    }

    /// Runs the JavaScript entry point with `input`, as the runner does.
    fn hook(&self, input: &Value) -> Output {
        let mut child = Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/container-hook/index.js"))
            .env("RUNNERCTL_BIN", support::bin())
            .env("RUNNERCTL_HOOK_DIR", &self.hook_dir)
            .env("RUNNERCTL_HOOK_IMAGES", &self.images)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed (.ci/run installs it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn fixture(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/container-hooks")
                .join(name),
        )
        .unwrap();
        serde_json::from_str(&self.localize(&text)).unwrap()
    }

    /// Nothing of a job is left: no directory, no process rooted there, no mount there.
    fn assert_clean(&self) {
        let jobs = self.hook_dir.join("jobs");
        let left: Vec<_> = std::fs::read_dir(&jobs)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "job directories left: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(jobs.to_str().unwrap()),
            "mounts left under {}",
            jobs.display()
        );
        for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            if let Ok(root) = std::fs::read_link(e.path().join("root")) {
                assert!(
                    !root.starts_with(&jobs),
                    "process {:?} still runs in a job",
                    e.file_name()
                );
            }
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd);
                assert!(
                    !(cmd.contains("systemd-nspawn") && cmd.contains(jobs.to_str().unwrap())),
                    "an nspawn of the job still runs: {cmd}"
                );
            }
        }
    }
}

/// A test that fails part way still leaves nothing running: each job left is swept by the
/// hook's own cleanup (which kills what runs in its roots and unmounts them).
impl Drop for Host {
    fn drop(&mut self) {
        let Ok(jobs) = std::fs::read_dir(self.hook_dir.join("jobs")) else {
            return;
        };
        for job in jobs.filter_map(|e| e.ok()) {
            let state = json!({"runnerctl": 1, "dir": job.path()});
            let _ = self.hook(&json!({"command": "cleanup_job", "state": state, "args": {}}));
        }
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

use support::free_port;

/// GitHub's prepare_job example on this host: the job container and a `redis` service, both
/// from the preloaded busybox image (the service is busybox's httpd on a free port).
fn prepare_input(h: &Host, port: u16) -> (Value, PathBuf) {
    let mut input = h.fixture("prepare-job.json");
    let response = h.root.join("response.json");
    input["responseFile"] = json!(response);
    input["args"]["container"]["image"] = json!("busybox:test");
    let svc = &mut input["args"]["services"][0];
    svc["image"] = json!("busybox:test");
    // The runner's own spelling (GitHub's example file writes `entrypoint`).
    svc.as_object_mut().unwrap().remove("entrypoint");
    svc["entryPoint"] = json!("httpd");
    svc["entryPointArgs"] = json!(["-f", "-p", port.to_string(), "-h", "/www"]);
    svc["portMappings"] = json!([format!("{port}:{port}")]);
    (input, response)
}

#[test]
fn a_job_runs_in_nspawn_guests_from_prepare_to_cleanup() {
    let h = Host::new();
    let port = free_port();
    let (input, response) = prepare_input(&h, port);
    let out = h.hook(&input);
    let (o, e) = text(&out);
    assert!(out.status.success(), "prepare_job: {o}\n{e}");
    let answer: Value = serde_json::from_str(&std::fs::read_to_string(&response).unwrap()).unwrap();
    assert_eq!(answer["isAlpine"], json!(false));
    let state = answer["state"].clone();
    assert!(
        state["job"]["name"].as_str().unwrap().starts_with("rc-"),
        "{answer}"
    );
    assert!(answer["context"]["container"]["id"].is_string(), "{answer}");
    // The runner reads the services as a list matched by position, ports as strings.
    let services = answer["context"]["services"].as_array().expect("a list");
    assert_eq!(services.len(), 1, "{answer}");
    assert_eq!(
        services[0]["ports"][port.to_string()],
        json!(port.to_string())
    );
    assert_eq!(services[0]["network"], json!("host"));
    assert!(
        e.contains("--cpus 1"),
        "create options are named as unused: {e}"
    );

    // A script step, as GitHub's example sends it, with a script of ours in the workspace.
    std::fs::write(
        h.work.join("repo/repo/example-script.sh"),
        "echo \"env=$NODE_ENV image=$IMAGE_VAR\"\necho \"path=$PATH\"\necho \"pwd=$(pwd)\"\n\
         echo kept > /state-file\necho written > /__w/repo/repo/from-guest\n\
         if touch /__e/x 2>/dev/null; then echo externals-writable; else echo externals-read-only; fi\n\
         ls /volume_mount >/dev/null && echo volume-mounted\n\
         wget -q -O- http://redis:{PORT}/\n"
            .replace("{PORT}", &port.to_string()),
    )
    .unwrap();
    let mut step = h.fixture("run-script-step.json");
    step["state"] = state.clone();
    step["args"]["entryPoint"] = json!("sh");
    let out = h.hook(&step);
    let (o, e) = text(&out);
    assert!(out.status.success(), "run_script_step: {o}\n{e}");
    assert!(o.contains("env=development image=from-image"), "{o}");
    assert!(
        o.contains("path=/foo/bar:bar/foo:/bin"),
        "prependPath first: {o}"
    );
    assert!(o.contains("pwd=/__w/repo/repo"), "{o}");
    assert!(o.contains("externals-read-only"), "{o}");
    assert!(o.contains("volume-mounted"), "{o}");
    assert!(
        o.contains("served by the service guest"),
        "the service by its name: {o}\n{e}"
    );
    assert_eq!(
        std::fs::read_to_string(h.work.join("repo/repo/from-guest")).unwrap(),
        "written\n"
    );
    assert!(
        !e.contains("Attempted to remove"),
        "nspawn's noise is filtered: {e}"
    );

    // State written by one step is seen by the next; a step's exit status is the hook's.
    std::fs::write(
        h.work.join("repo/repo/example-script.sh"),
        "cat /state-file\nexit 7\n",
    )
    .unwrap();
    let out = h.hook(&step);
    assert_eq!(out.status.code(), Some(7), "{:?}", text(&out));
    assert!(text(&out).0.contains("kept"));

    // A container step: a one-off guest from the step's image with its arguments.
    let mut cstep = h.fixture("run-container-step.json");
    cstep["state"] = state.clone();
    cstep["args"]["image"] = json!("busybox:test");
    cstep["args"]["entryPoint"] = json!("sh");
    cstep["args"]["entryPointArgs"] =
        json!(["-c", "echo step-env=$NODE_ENV; cat /__w/repo/repo/from-guest; test ! -e /state-file && echo own-root"]);
    let out = h.hook(&cstep);
    let (o, e) = text(&out);
    assert!(out.status.success(), "run_container_step: {o}\n{e}");
    assert!(o.contains("step-env=development"), "{o}");
    assert!(o.contains("written"), "{o}");
    assert!(o.contains("own-root"), "{o}");
    let steps = Path::new(state["dir"].as_str().unwrap()).join("steps");
    assert_eq!(
        std::fs::read_dir(&steps).unwrap().count(),
        0,
        "the step's root went"
    );
    // A Dockerfile build is refused by name.
    cstep["args"]["dockerfile"] = json!("Dockerfile");
    let out = h.hook(&cstep);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).1.contains("Dockerfile"), "{:?}", text(&out));

    // Cleanup: guests stopped, roots unmounted, the job's directory gone; twice is fine.
    let cleanup =
        json!({"command": "cleanup_job", "responseFile": null, "state": state, "args": {}});
    for _ in 0..2 {
        let out = h.hook(&cleanup);
        assert!(out.status.success(), "cleanup_job: {:?}", text(&out));
        h.assert_clean();
    }
    // The image cache stays for the next job.
    assert!(h.hook_dir.join("rootfs").read_dir().unwrap().count() > 0);
}

#[test]
fn bad_inputs_exit_non_zero_with_a_message_and_leave_nothing() {
    let h = Host::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"command": "build_image", "args": {}}),
            "unknown command `build_image`",
        ),
        (
            json!({"command": "run_script_step", "state": {}, "args": {"entryPoint": "sh"}}),
            "`state` is empty",
        ),
        (
            json!({"command": "cleanup_job", "state": {"runnerctl": 1, "dir": "/etc"}}),
            "not a job directory",
        ),
    ];
    for (input, message) in cases {
        let out = h.hook(&input);
        assert_ne!(out.status.code(), Some(0), "{input}");
        assert!(text(&out).1.contains(message), "{input}: {:?}", text(&out));
    }
    // Malformed JSON.
    let mut child = Command::new(support::bin())
        .arg("container-hook")
        .env("RUNNERCTL_HOOK_DIR", &h.hook_dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"command\": ")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    assert!(
        Path::new("/etc/passwd").exists(),
        "a hostile state removed nothing"
    );

    // A missing image (a registry on a closed local port): a clear error, the credential in
    // no output, nothing left behind.
    let port = free_port();
    let (mut input, response) = prepare_input(&h, free_port());
    input["args"]["container"]["image"] = json!(format!("127.0.0.1:{port}/nope:1"));
    input["args"]["container"]["registry"]["password"] = json!("s3cret-pass");
    let out = h.hook(&input);
    let (o, e) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(e.contains("nope:1"), "the image is named: {e}");
    assert!(!o.contains("s3cret-pass") && !e.contains("s3cret-pass"));
    assert!(!response.exists());
    h.assert_clean();
    let auth_left = std::fs::read_dir(&h.hook_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(".auth-"));
    assert!(!auth_left, "the registry credential's file went");
}
