//! `pwctl cp`: a file into one pod, into many (uploaded to the daemon once), or out of a pod,
//! each copy checked against a SHA-256 (computed by the pod for what it wrote, by pwctl for
//! what it received).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use podwrangler::api::{
    API_PREFIX, FILE_SHA256_HEADER, FILE_SIZE_HEADER, FileCopyResponse, FileCopyResult,
};
use sha2::{Digest, Sha256};

use crate::cli::CpCmd;
use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::output::{self, print_json, print_rows};
use crate::pods::{pod_not_found, pod_path};

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Local(String),
    Pod {
        alias: String,
        path: String,
    },
    /// `:PATH`: the pods named by --pods, --tag or --all.
    Pods(String),
}

fn alias_like(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `ALIAS:PATH`, `:PATH`, or a local path (as scp reads them: use `./a:b` for a local file
/// with a colon in its name).
fn place(text: &str) -> Place {
    if let Some(path) = text.strip_prefix(':') {
        return Place::Pods(path.to_owned());
    }
    match text.split_once(':') {
        Some((alias, path)) if alias_like(alias) => Place::Pod {
            alias: alias.to_owned(),
            path: path.to_owned(),
        },
        _ => Place::Local(text.to_owned()),
    }
}

/// A pod path ending in `/` takes the local file's name.
fn into_dir(path: &str, source: &str) -> Result<String, CtlError> {
    if path.is_empty() {
        return Err(CtlError::Usage(
            "give the path in the pod after the colon".into(),
        ));
    }
    if !path.ends_with('/') {
        return Ok(path.to_owned());
    }
    let name = Path::new(source)
        .file_name()
        .filter(|_| source != "-")
        .ok_or_else(|| {
            CtlError::Usage(format!(
                "{path} is a directory: give the file's name (the source has none)"
            ))
        })?;
    Ok(format!("{path}{}", name.to_string_lossy()))
}

pub fn run(client: &Client, cmd: &CpCmd, json: bool) -> Result<i32, CtlError> {
    let chosen =
        usize::from(cmd.pods.is_some()) + usize::from(cmd.tag.is_some()) + usize::from(cmd.all);
    match (place(&cmd.source), place(&cmd.destination)) {
        (Place::Pod { alias, path }, Place::Local(file)) => {
            if chosen > 0 {
                return Err(CtlError::Usage(
                    "--pods, --tag and --all are for copies into pods".into(),
                ));
            }
            copy_out(client, &alias, &path, &file, json)
        }
        (Place::Local(file), Place::Pod { alias, path }) => {
            if chosen > 0 {
                return Err(CtlError::Usage(
                    "ALIAS:PATH names one pod; use :PATH with --pods, --tag or --all".into(),
                ));
            }
            let path = into_dir(&path, &file)?;
            let query = [("path", path)];
            copy_in(
                client,
                cmd,
                &file,
                &format!("{}/files", pod_path(&alias)),
                "PUT",
                query.to_vec(),
                json,
            )
            .map_err(pod_not_found(&alias))
        }
        (Place::Local(file), Place::Pods(path)) => {
            if chosen != 1 {
                return Err(CtlError::Usage(
                    ":PATH needs exactly one of --pods, --tag or --all".into(),
                ));
            }
            let mut query = vec![("path", into_dir(&path, &file)?)];
            if let Some(p) = &cmd.pods {
                query.push(("aliases", p.clone()));
            }
            if let Some(t) = &cmd.tag {
                query.push(("tag", t.clone()));
            }
            if cmd.all {
                query.push(("all", "true".into()));
            }
            if let Some(c) = cmd.concurrency {
                query.push(("concurrency", c.to_string()));
            }
            copy_in(
                client,
                cmd,
                &file,
                &format!("{API_PREFIX}/files"),
                "POST",
                query,
                json,
            )
        }
        (Place::Local(_), Place::Local(_)) => Err(CtlError::Usage(
            "one side must be in a pod: ALIAS:PATH, or :PATH with --pods, --tag or --all".into(),
        )),
        _ => Err(CtlError::Usage(
            "copy from a local file into pods, or from one pod (ALIAS:PATH) to a local file".into(),
        )),
    }
}

/// Uploads `file` (or stdin) and prints one row per pod.
fn copy_in(
    client: &Client,
    cmd: &CpCmd,
    file: &str,
    path: &str,
    method: &str,
    mut query: Vec<(&str, String)>,
    json: bool,
) -> Result<i32, CtlError> {
    let mut reader: Box<dyn Read> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| CtlError::BadInput(format!("cannot read {file}: {e}")))?;
        let meta = f
            .metadata()
            .map_err(|e| CtlError::BadInput(format!("cannot read {file}: {e}")))?;
        if !meta.is_file() {
            return Err(CtlError::BadInput(format!("{file} is not a regular file")));
        }
        if cmd.mode.is_none() {
            use std::os::unix::fs::PermissionsExt;
            query.push(("mode", format!("{:03o}", meta.permissions().mode() & 0o777)));
        }
        Box::new(f)
    };
    if let Some(m) = &cmd.mode {
        query.push(("mode", m.clone()));
    }
    let response: FileCopyResponse = client.send_raw(method, path, &query, &mut reader)?;
    if json {
        print_json(&response);
    } else {
        print_results(&response.results);
        let summary = format!(
            "{} pod{}: {} verified, {} failed ({} bytes, sha256 {})",
            response.results.len(),
            if response.results.len() == 1 { "" } else { "s" },
            response.succeeded,
            response.failed,
            response.size,
            response.sha256
        );
        println!(
            "{}",
            if response.failed == 0 {
                output::good(&summary)
            } else {
                output::bad(&summary)
            }
        );
    }
    Ok(if response.failed == 0 && !response.results.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn print_results(results: &[FileCopyResult]) {
    let rows = results
        .iter()
        .map(|r| {
            vec![
                r.alias.clone(),
                if r.ok {
                    output::good("ok")
                } else {
                    output::bad("FAILED")
                },
                r.size.map_or_else(|| "-".into(), |n| n.to_string()),
                r.sha256
                    .as_deref()
                    .map_or_else(|| "-".into(), |s| s.chars().take(16).collect()),
                output::duration(Some(r.duration_ms)),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_rows(
        &["POD", "RESULT", "BYTES", "SHA-256", "TIME", "ERROR"],
        rows,
    );
}

/// Where a downloaded file goes: `file`, or into it when it is a directory.
fn local_target(file: &str, remote: &str) -> PathBuf {
    let target = PathBuf::from(file);
    if file.ends_with('/') || target.is_dir() {
        let name = Path::new(remote)
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "download".into());
        return target.join(name);
    }
    target
}

/// Downloads `remote` from `alias` into `file` (or stdout), through a temp file renamed only
/// once its SHA-256 matches the one the pod computed.
fn copy_out(
    client: &Client,
    alias: &str,
    remote: &str,
    file: &str,
    json: bool,
) -> Result<i32, CtlError> {
    let started = Instant::now();
    let query = [("path", remote.to_owned())];
    let mut resp = client
        .get_raw(&format!("{}/files", pod_path(alias)), &query)
        .map_err(pod_not_found(alias))?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let want_sha = header(FILE_SHA256_HEADER).unwrap_or_default();
    let want_size: Option<u64> = header(FILE_SIZE_HEADER).and_then(|s| s.trim().parse().ok());
    let to_stdout = file == "-";
    let target = local_target(file, remote);
    let temp = {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        target.with_file_name(format!(".{name}.pwctl-{}", std::process::id()))
    };
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&temp)
                .map_err(|e| CtlError::BadInput(format!("cannot write {}: {e}", temp.display())))?,
        )
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 256 * 1024];
    let mut broke: Option<String> = None;
    loop {
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
                if let Err(e) = sink.write_all(&buf[..n]) {
                    broke = Some(format!("cannot write: {e}"));
                    break;
                }
            }
            Err(e) => {
                broke = Some(format!("the transfer broke off: {e}"));
                break;
            }
        }
    }
    let _ = sink.flush();
    drop(sink);
    let got_sha = hex::encode(hasher.finalize());
    let error = if let Some(b) = broke {
        Some(b)
    } else if want_sha.is_empty() {
        Some("not verified: the pod has neither sha256sum nor openssl to compute a SHA-256".into())
    } else if got_sha != want_sha {
        Some(format!(
            "verification failed: received SHA-256 {got_sha}, the pod's is {want_sha}"
        ))
    } else if want_size.is_some_and(|n| n != size) {
        Some(format!(
            "verification failed: received {size} bytes, the pod has {}",
            want_size.unwrap_or_default()
        ))
    } else {
        None
    };
    if !to_stdout {
        if error.is_none() {
            std::fs::rename(&temp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                CtlError::BadInput(format!("cannot write {}: {e}", target.display()))
            })?;
        } else {
            let _ = std::fs::remove_file(&temp);
        }
    }
    let result = FileCopyResult {
        alias: alias.to_owned(),
        path: remote.to_owned(),
        ok: error.is_none(),
        size: Some(size),
        sha256: Some(got_sha),
        error,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    if json {
        print_json(&result);
    } else if to_stdout {
        if let Some(e) = &result.error {
            output::error_line(e);
        }
    } else {
        match &result.error {
            None => eprintln!(
                "{}",
                output::good(&format!(
                    "{alias}:{remote} -> {}: {size} bytes, sha256 {}, verified",
                    target.display(),
                    result.sha256.as_deref().unwrap_or("")
                ))
            ),
            Some(e) => output::error_line(&format!("{alias}:{remote}: {e}")),
        }
    }
    Ok(if result.ok { exit::OK } else { exit::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_read_like_scp() {
        assert_eq!(
            place("web-0:/etc/x"),
            Place::Pod {
                alias: "web-0".into(),
                path: "/etc/x".into()
            }
        );
        assert_eq!(place(":/tmp/x"), Place::Pods("/tmp/x".into()));
        assert_eq!(place("./a:b"), Place::Local("./a:b".into()));
        assert_eq!(place("file.txt"), Place::Local("file.txt".into()));
        assert_eq!(place("-"), Place::Local("-".into()));
    }

    #[test]
    fn directories_take_the_source_name() {
        assert_eq!(into_dir("/tmp/", "dir/app.tar").unwrap(), "/tmp/app.tar");
        assert_eq!(into_dir("/tmp/x", "app.tar").unwrap(), "/tmp/x");
        assert!(into_dir("/tmp/", "-").is_err());
        assert!(into_dir("", "a").is_err());
    }
}
