//! Images become root filesystems: pulled with `skopeo` into the hook's OCI layout (from an
//! OCI layout of preloaded images when it has them, else from the registry), unpacked once with
//! `umoci` into a cache by manifest digest that jobs only read.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::protocol::Registry;
use super::{tool, HookError, Settings};

/// An unpacked image: its read-only root and what its configuration says a process gets.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: String,
    pub digest: String,
    pub rootfs: PathBuf,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// The image's entry point and command.
    pub args: Vec<String>,
}

/// The tag an image has in the hook's layout: any reference, made a valid OCI ref name.
fn tag_of(reference: &str) -> String {
    let digest = Sha256::digest(reference.as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("i{hex}")
}

/// The manifest digest of `tag` in the OCI layout at `layout`, if it has it.
pub fn digest_in(layout: &Path, tag: &str) -> Result<Option<String>, HookError> {
    let index = layout.join("index.json");
    let text = match std::fs::read_to_string(&index) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HookError::io(format!("reading {}", index.display()), e)),
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HookError::Tool(format!("{} is not an OCI index: {e}", index.display())))?;
    let found = v["manifests"].as_array().and_then(|all| {
        all.iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
    });
    Ok(found.and_then(|m| m["digest"].as_str()).map(String::from))
}

/// Where the image comes from: the preloaded layout when it holds the reference (as written,
/// or with `:latest`), else the registry.
fn source(settings: &Settings, reference: &str) -> Result<String, HookError> {
    if let Some(pre) = &settings.images {
        let mut names = vec![reference.to_string()];
        if !reference.rsplit('/').next().unwrap_or("").contains(':') && !reference.contains('@') {
            names.push(format!("{reference}:latest"));
        }
        for n in names {
            if digest_in(pre, &n)?.is_some() {
                return Ok(format!("oci:{}:{n}", pre.display()));
            }
        }
    }
    Ok(format!("docker://{reference}"))
}

/// A containers-auth.json for one registry, in a file only root reads, removed when dropped.
struct AuthFile(PathBuf);

impl AuthFile {
    fn write(dir: &Path, registry: &Registry) -> Result<Option<AuthFile>, HookError> {
        let (Some(user), Some(password)) = (&registry.username, &registry.password) else {
            return Ok(None);
        };
        use base64::Engine;
        let server = registry.server_url.as_deref().unwrap_or("docker.io");
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or(server);
        let host = if host == "index.docker.io" || host.is_empty() {
            "docker.io"
        } else {
            host
        };
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let body = serde_json::json!({ "auths": { host: { "auth": auth } } });
        let path = dir.join(format!(".auth-{}.json", fastrand::u64(..)));
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| HookError::io(format!("writing {}", path.display()), e))?;
        f.write_all(body.to_string().as_bytes())
            .map_err(|e| HookError::io(format!("writing {}", path.display()), e))?;
        Ok(Some(AuthFile(path)))
    }
}

impl Drop for AuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The image `reference` as a root filesystem in the cache, pulled and unpacked when needed.
pub fn get(
    settings: &Settings,
    reference: &str,
    registry: Option<&Registry>,
) -> Result<Image, HookError> {
    if reference.trim().is_empty() {
        return Err(HookError::BadInput("an image reference is empty".into()));
    }
    let layout = settings.dir.join("oci");
    let cache = settings.dir.join("rootfs");
    for d in [&layout, &cache] {
        std::fs::create_dir_all(d)
            .map_err(|e| HookError::io(format!("creating {}", d.display()), e))?;
    }
    let tag = tag_of(reference);
    if digest_in(&layout, &tag)?.is_none() {
        let from = source(settings, reference)?;
        let auth = match registry {
            Some(r) => AuthFile::write(&settings.dir, r)?,
            None => None,
        };
        let mut args = vec!["copy".to_string(), "--quiet".into()];
        if let Some(a) = &auth {
            args.push("--src-authfile".into());
            args.push(a.0.display().to_string());
        }
        args.push(from);
        args.push(format!("oci:{}:{tag}", layout.display()));
        let secrets: Vec<&str> = registry
            .and_then(|r| r.password.as_deref())
            .into_iter()
            .collect();
        tool::run(&settings.skopeo, &args, &secrets)
            .map_err(|e| e.context(format!("pulling image `{reference}`")))?;
    }
    let digest = digest_in(&layout, &tag)?.ok_or_else(|| {
        HookError::Tool(format!(
            "image `{reference}` is not in {} after the pull",
            layout.display()
        ))
    })?;
    let hex = digest.rsplit(':').next().unwrap_or(&digest).to_string();
    let bundle = cache.join(&hex);
    if !bundle.join("config.json").exists() {
        unpack(settings, &layout, &tag, &cache, &bundle)
            .map_err(|e| e.context(format!("unpacking image `{reference}`")))?;
    }
    let (env, cwd, args) = runtime_config(&bundle.join("config.json"))?;
    Ok(Image {
        reference: reference.to_string(),
        digest,
        rootfs: bundle.join("rootfs"),
        env,
        cwd,
        args,
    })
}

/// Unpacks into a private directory, then renames it into place: a job never sees half an
/// image, and two jobs unpacking the same image at once both end with the same one.
fn unpack(
    settings: &Settings,
    layout: &Path,
    tag: &str,
    cache: &Path,
    bundle: &Path,
) -> Result<(), HookError> {
    let tmp = cache.join(format!(".unpack-{}", fastrand::u64(..)));
    let args = vec![
        "unpack".to_string(),
        "--image".into(),
        format!("{}:{tag}", layout.display()),
        tmp.display().to_string(),
    ];
    let done = tool::run(&settings.umoci, &args, &[]).and_then(|_| {
        match std::fs::rename(&tmp, bundle) {
            Ok(()) => Ok(()),
            // Another job unpacked it meanwhile.
            Err(_) if bundle.join("config.json").exists() => Ok(()),
            Err(e) => Err(HookError::io(
                format!("moving the image to {}", bundle.display()),
                e,
            )),
        }
    });
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    done
}

type RuntimeConfig = (Vec<(String, String)>, Option<String>, Vec<String>);

/// The environment, working directory and arguments of the runtime spec umoci wrote.
fn runtime_config(path: &Path) -> Result<RuntimeConfig, HookError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HookError::io(format!("reading {}", path.display()), e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HookError::Tool(format!("{} is not a runtime spec: {e}", path.display())))?;
    let p = &v["process"];
    let env = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let cwd = p["cwd"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(String::from);
    let args = p["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok((env, cwd, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_oci_ref_names_and_differ_by_reference() {
        let a = tag_of("node:22");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, tag_of("node:20"));
    }

    #[test]
    fn the_layout_index_is_read_by_ref_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(digest_in(dir.path(), "x").unwrap(), None);
        std::fs::write(
            dir.path().join("index.json"),
            r#"{"manifests":[{"digest":"sha256:ab","annotations":{"org.opencontainers.image.ref.name":"busybox:test"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            digest_in(dir.path(), "busybox:test").unwrap().as_deref(),
            Some("sha256:ab")
        );
        assert_eq!(digest_in(dir.path(), "busybox").unwrap(), None);
    }

    #[test]
    fn registry_credentials_go_to_a_private_file_that_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry {
            username: Some("u".into()),
            password: Some("p".into()),
            server_url: Some("https://index.docker.io/v1".into()),
        };
        let f = AuthFile::write(dir.path(), &r).unwrap().unwrap();
        let text = std::fs::read_to_string(&f.0).unwrap();
        assert!(text.contains("\"docker.io\""), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let path = f.0.clone();
        drop(f);
        assert!(!path.exists());
        assert!(AuthFile::write(dir.path(), &Registry::default())
            .unwrap()
            .is_none());
    }
}
