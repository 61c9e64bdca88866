//! `pwctl health` and `pwctl pod ...`: what the daemon knows about itself and the pods.

use std::io::Read;
use std::path::Path;

use podwrangler::api::{
    API_PREFIX, Health, ImportRequest, ImportResponse, PodCreate, PodInfo, PodState, PodUpdate,
};
use podwrangler::{ProviderKind, Secret};

use crate::cli::{PodAdd, PodImport, PodList, PodRemove, PodShow, PodUpdateCmd};
use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::kube::{self, KubeAccess, KubeFlags};
use crate::output::{self, print_json, print_rows};

pub fn pods_path() -> String {
    format!("{API_PREFIX}/pods/")
}

/// `/api/v1/pods/{alias}`, the alias percent-encoded.
pub fn pod_path(alias: &str) -> String {
    format!("{API_PREFIX}/pods/{}", encode_segment(alias))
}

pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Turns the daemon's 404 for an alias into the friendly "no pod named" error.
pub fn pod_not_found(alias: &str) -> impl Fn(CtlError) -> CtlError + '_ {
    move |e| match &e {
        CtlError::Api(p) if p.code == "pod_not_found" => CtlError::no_pod(alias),
        _ => e,
    }
}

pub fn health(client: &Client, json: bool) -> Result<i32, CtlError> {
    let h: Health = client.get("/health", &[])?;
    let code = if h.status == "ok" && h.database.ok {
        exit::OK
    } else {
        exit::FAILURE
    };
    if json {
        print_json(&h);
        return Ok(code);
    }
    let status = if code == exit::OK {
        output::good(&h.status)
    } else {
        output::bad(&h.status)
    };
    println!(
        "podwranglerd {} at {}: {} (up {})",
        h.version,
        client.endpoint(),
        status,
        output::uptime(h.uptime_secs)
    );
    let db = if h.database.ok {
        output::good("ok")
    } else {
        output::bad("not answering")
    };
    println!("database: {} {}", h.database.backend, db);
    let total: usize = h.pods.values().sum();
    if total == 0 {
        println!("pods: none registered");
    } else {
        let states: Vec<String> = h
            .pods
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        println!("pods: {total} ({})", states.join(", "));
    }
    Ok(code)
}

pub(crate) fn state_text(state: &PodState) -> String {
    match state {
        PodState::Ready => output::good("ready"),
        PodState::Idle => "idle".into(),
        PodState::Connecting => output::warn("connecting"),
        PodState::Waiting => output::warn("waiting"),
        PodState::Busy { queued } if *queued > 0 => output::warn(&format!("busy (+{queued})")),
        PodState::Busy { .. } => output::warn("busy"),
        PodState::BackingOff { attempt, .. } => output::warn(&format!("retrying (#{attempt})")),
        PodState::Failed { .. } => output::bad("failed"),
        PodState::WaitingOpenFiles => output::warn("waiting (open-file limit)"),
    }
}

fn state_plain(state: &PodState) -> String {
    match state {
        PodState::Busy { queued } if *queued > 0 => format!("busy (+{queued})"),
        PodState::BackingOff { attempt, .. } => format!("retrying (#{attempt})"),
        PodState::WaitingOpenFiles => "waiting (open-file limit)".to_string(),
        other => other.name().to_string(),
    }
}

pub fn list(client: &Client, cmd: &PodList, json: bool) -> Result<i32, CtlError> {
    let query: Vec<(&str, String)> = cmd.tag.iter().map(|t| ("tag", t.clone())).collect();
    let pods: Vec<PodInfo> = client.get(&pods_path(), &query)?;
    if json {
        print_json(&pods);
        return Ok(exit::OK);
    }
    if cmd.quiet {
        for p in &pods {
            println!("{}", p.alias);
        }
        return Ok(exit::OK);
    }
    if pods.is_empty() {
        match &cmd.tag {
            Some(tag) => eprintln!("no pods tagged {tag}"),
            None => {
                eprintln!("no pods registered (add one with pwctl pod add or pwctl pod import)")
            }
        }
        return Ok(exit::OK);
    }
    // Table cells stay uncoloured: comfy-table would count escape codes as width.
    let rows = pods
        .iter()
        .map(|p| {
            vec![
                p.alias.clone(),
                p.provider.to_string(),
                p.identity.label(),
                state_plain(&p.state),
                p.tags.join(","),
            ]
        })
        .collect();
    print_rows(&["ALIAS", "PROVIDER", "POD", "STATE", "TAGS"], rows);
    Ok(exit::OK)
}

pub fn show(client: &Client, cmd: &PodShow, json: bool) -> Result<i32, CtlError> {
    let p: PodInfo = client
        .get(&pod_path(&cmd.alias), &[])
        .map_err(pod_not_found(&cmd.alias))?;
    if json {
        print_json(&p);
        return Ok(exit::OK);
    }
    print_pod(&p);
    Ok(exit::OK)
}

fn print_pod(p: &PodInfo) {
    let id = &p.identity;
    let row = |k: &str, v: &str| println!("{:<11} {v}", output::dim(&format!("{k}:")));
    println!("{}", output::strong(&p.alias));
    row("provider", p.provider.as_str());
    row("pod", &id.pod_name);
    if let Some(ns) = &id.namespace {
        row("namespace", ns);
    }
    if let Some(c) = &id.container {
        row("container", c);
    }
    if let Some(s) = &id.service {
        row("service", s);
    }
    if let Some(d) = &id.deployment {
        row("deployment", d);
    }
    if let Some(c) = &id.cluster {
        row("cluster", c);
    }
    row("target", &p.target);
    row("token", if p.has_token { "set" } else { "none" });
    row(
        "tags",
        &if p.tags.is_empty() {
            "-".into()
        } else {
            p.tags.join(", ")
        },
    );
    let mut state = state_text(&p.state);
    match &p.state {
        PodState::BackingOff {
            next_retry_at,
            last_error,
            ..
        } => state.push_str(&format!(
            " (next try {}; last error: {last_error})",
            next_retry_at
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S")
        )),
        PodState::Failed { last_error } => state.push_str(&format!(" ({last_error})")),
        _ => {}
    }
    row("state", &state);
    row("created", &local_time(&p.created_at));
    row("updated", &local_time(&p.updated_at));
}

pub fn local_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A token from `--token` or `--token-file` (`-` reads stdin), trimmed of its newline.
fn read_token(
    token: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<Secret>, CtlError> {
    match (token, file) {
        (Some(_), Some(_)) => Err(CtlError::Usage(
            "--token and --token-file both give a token; pass one".into(),
        )),
        (Some(t), None) => Ok(Some(Secret::new(t.clone()))),
        (None, Some(path)) => {
            let mut text = String::new();
            if path == Path::new("-") {
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    CtlError::BadInput(format!("cannot read the token from stdin: {e}"))
                })?;
            } else {
                text = std::fs::read_to_string(path).map_err(|e| {
                    CtlError::BadInput(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?;
            }
            let text = text.trim();
            if text.is_empty() {
                return Err(CtlError::BadInput(format!(
                    "the token file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(Secret::new(text)))
        }
        (None, None) => Ok(None),
    }
}

fn parse_provider(p: &str) -> Result<ProviderKind, CtlError> {
    p.parse()
        .map_err(|e: String| CtlError::Usage(format!("--provider: {e}")))
}

/// A Kubernetes exec URL names `/api/v1/namespaces/NS/pods/POD/exec`; anything else is a
/// PlainTTY web terminal.
pub fn guess_provider(url: &str) -> ProviderKind {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    if path.contains("/namespaces/") && path.contains("/pods/") {
        ProviderKind::Kubernetes
    } else {
        ProviderKind::PlainTty
    }
}

/// Refuses Kubernetes-only flags on a PlainTTY pod, rather than ignoring them.
fn refuse_kubernetes_flags(given: &[(&str, bool)]) -> Result<(), CtlError> {
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(CtlError::Usage(format!(
            "{flag} applies to --provider kubernetes only"
        ))),
        None => Ok(()),
    }
}

pub fn add(client: &Client, cmd: &PodAdd, json: bool) -> Result<i32, CtlError> {
    let provider = match (&cmd.provider, &cmd.url) {
        (Some(p), _) => parse_provider(p)?,
        (None, Some(url)) => guess_provider(url),
        // Flags only Kubernetes takes say which provider is meant.
        (None, None)
            if cmd.cluster.is_some() || cmd.kubeconfig.is_some() || cmd.context.is_some() =>
        {
            ProviderKind::Kubernetes
        }
        (None, None) => ProviderKind::PlainTty,
    };
    let token = read_token(&cmd.token, &cmd.token_file)?;
    let access = match provider {
        ProviderKind::Kubernetes => kube::resolve(KubeFlags {
            cluster: cmd.cluster.as_deref(),
            kubeconfig: cmd.kubeconfig.as_deref(),
            context: cmd.context.as_deref(),
            server: cmd.server.as_deref(),
            url: cmd.url.as_deref(),
            token,
            certificate_authority: cmd.certificate_authority.as_deref(),
            insecure_skip_tls_verify: cmd.insecure_skip_tls_verify,
            kubeconfig_by_default: true,
        })?,
        ProviderKind::PlainTty => {
            refuse_kubernetes_flags(&[
                ("--cluster", cmd.cluster.is_some()),
                ("--kubeconfig", cmd.kubeconfig.is_some()),
                ("--context", cmd.context.is_some()),
                (
                    "--certificate-authority",
                    cmd.certificate_authority.is_some(),
                ),
            ])?;
            KubeAccess {
                server: cmd.server.clone(),
                insecure_skip_tls_verify: cmd.insecure_skip_tls_verify,
                token,
                ..KubeAccess::default()
            }
        }
    };
    let body = PodCreate {
        alias: cmd.alias.clone(),
        provider,
        url: cmd.url.clone(),
        token: access.token,
        pod_name: cmd.pod_name.clone(),
        namespace: cmd.namespace.clone().or(access.namespace),
        container: cmd.container.clone(),
        service_id: cmd.service_id.clone(),
        server: access.server,
        cluster: access.cluster,
        certificate_authority: access.certificate_authority,
        client_certificate: access.client_certificate,
        client_key: access.client_key,
        insecure_skip_tls_verify: access.insecure_skip_tls_verify.then_some(true),
        cols: cmd.cols,
        tags: cmd.tag.clone(),
    };
    let p: PodInfo = client.send(
        "POST",
        &pods_path(),
        &body,
        Some(std::time::Duration::from_secs(60)),
    )?;
    if json {
        print_json(&p);
    } else {
        println!(
            "registered {} ({}, {})",
            output::strong(&p.alias),
            p.provider,
            p.identity.label()
        );
    }
    Ok(exit::OK)
}

pub fn update(client: &Client, cmd: &PodUpdateCmd, json: bool) -> Result<i32, CtlError> {
    if cmd.clear_tags && !cmd.tag.is_empty() {
        return Err(CtlError::Usage(
            "--tag and --clear-tags contradict each other".into(),
        ));
    }
    let tags = if cmd.clear_tags {
        Some(Vec::new())
    } else if cmd.tag.is_empty() {
        None
    } else {
        Some(cmd.tag.clone())
    };
    let token = read_token(&cmd.token, &cmd.token_file)?;
    let switches_cluster = cmd.cluster.is_some()
        || cmd.kubeconfig.is_some()
        || cmd.context.is_some()
        || cmd.certificate_authority.is_some();
    let access = if switches_cluster {
        kube::resolve(KubeFlags {
            cluster: cmd.cluster.as_deref(),
            kubeconfig: cmd.kubeconfig.as_deref(),
            context: cmd.context.as_deref(),
            server: cmd.server.as_deref(),
            url: cmd.url.as_deref(),
            token,
            certificate_authority: cmd.certificate_authority.as_deref(),
            insecure_skip_tls_verify: cmd.insecure_skip_tls_verify == Some(true),
            kubeconfig_by_default: false,
        })?
    } else {
        // Nothing Kubernetes-specific: pass what was given, for either provider.
        KubeAccess {
            server: cmd.server.clone(),
            token,
            ..KubeAccess::default()
        }
    };
    // New caller credentials bring their own TLS setting (the old one must not linger); a
    // daemon cluster has its own, and otherwise only an explicit flag changes it.
    let insecure_skip_tls_verify = match cmd.insecure_skip_tls_verify {
        Some(v) => Some(v),
        None if switches_cluster && access.cluster.is_none() => {
            Some(access.insecure_skip_tls_verify)
        }
        None => None,
    };
    let body = PodUpdate {
        provider: cmd.provider.as_deref().map(parse_provider).transpose()?,
        url: cmd.url.clone(),
        token: access.token,
        pod_name: cmd.pod_name.clone(),
        // A pod keeps its namespace when it changes clusters; only --namespace moves it.
        namespace: cmd.namespace.clone(),
        container: cmd.container.clone(),
        service_id: cmd.service_id.clone(),
        server: access.server,
        cluster: access.cluster,
        certificate_authority: access.certificate_authority,
        client_certificate: access.client_certificate,
        client_key: access.client_key,
        insecure_skip_tls_verify,
        cols: cmd.cols,
        tags,
    };
    let empty =
        serde_json::to_value(&body).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()));
    if empty {
        return Err(CtlError::Usage(format!(
            "nothing to change for {} (pass --url, --token, --tag, ...; see pwctl pod update --help)",
            cmd.alias
        )));
    }
    let p: PodInfo = client
        .send(
            "PATCH",
            &pod_path(&cmd.alias),
            &body,
            Some(std::time::Duration::from_secs(60)),
        )
        .map_err(pod_not_found(&cmd.alias))?;
    if json {
        print_json(&p);
    } else {
        println!(
            "updated {} ({}, {})",
            output::strong(&p.alias),
            p.provider,
            p.identity.label()
        );
    }
    Ok(exit::OK)
}

pub fn remove(client: &Client, cmd: &PodRemove, json: bool) -> Result<i32, CtlError> {
    if cmd.aliases.is_empty() {
        return Err(CtlError::Usage(
            "name the pods to remove: pwctl pod remove ALIAS...".into(),
        ));
    }
    let mut removed = Vec::new();
    let mut first_error = None;
    for alias in &cmd.aliases {
        match client
            .delete(&pod_path(alias))
            .map_err(pod_not_found(alias))
        {
            Ok(()) => {
                if !json {
                    println!("removed {}", output::strong(alias));
                }
                removed.push(alias.clone());
            }
            Err(e) if cmd.aliases.len() > 1 && !matches!(e, CtlError::Unreachable { .. }) => {
                output::error_line(&e.to_string());
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if json {
        print_json(&serde_json::json!({ "removed": removed }));
    }
    match first_error {
        Some(e) => Err(CtlError::Exit(e.exit_code())),
        None => Ok(exit::OK),
    }
}

pub fn import(client: &Client, cmd: &PodImport, json: bool) -> Result<i32, CtlError> {
    let access = kube::resolve(KubeFlags {
        cluster: cmd.cluster.as_deref(),
        kubeconfig: cmd.kubeconfig.as_deref(),
        context: cmd.context.as_deref(),
        server: cmd.server.as_deref(),
        url: None,
        token: read_token(&cmd.token, &cmd.token_file)?,
        certificate_authority: cmd.certificate_authority.as_deref(),
        insecure_skip_tls_verify: cmd.insecure_skip_tls_verify,
        kubeconfig_by_default: true,
    })?;
    let namespace = cmd
        .namespace
        .clone()
        .or(access.namespace)
        .unwrap_or_else(|| "default".into());
    let body = ImportRequest {
        namespace: namespace.clone(),
        label_selector: cmd.selector.clone(),
        server: access.server,
        token: access.token,
        cluster: access.cluster,
        certificate_authority: access.certificate_authority,
        client_certificate: access.client_certificate,
        client_key: access.client_key,
        insecure_skip_tls_verify: access.insecure_skip_tls_verify.then_some(true),
        alias_prefix: cmd.prefix.clone(),
        tags: cmd.tag.clone(),
    };
    let r: ImportResponse = client.send(
        "POST",
        &format!("{API_PREFIX}/pods/import"),
        &body,
        Some(std::time::Duration::from_secs(120)),
    )?;
    if json {
        print_json(&r);
        return Ok(exit::OK);
    }
    if r.registered.is_empty() && r.skipped.is_empty() {
        println!("no pods found in namespace {namespace}");
    }
    if !r.registered.is_empty() {
        println!(
            "registered {} pod{}: {}",
            r.registered.len(),
            if r.registered.len() == 1 { "" } else { "s" },
            r.registered.join(", ")
        );
    }
    if !r.skipped.is_empty() {
        println!(
            "skipped {} (alias already taken): {}",
            r.skipped.len(),
            r.skipped.join(", ")
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_guessed_from_the_url_shape() {
        assert_eq!(
            guess_provider("https://k8s:6443/api/v1/namespaces/default/pods/web-0/exec"),
            ProviderKind::Kubernetes
        );
        assert_eq!(
            guess_provider("wss://host/exec/svc/?token=t&pod=web-0"),
            ProviderKind::PlainTty
        );
    }

    #[test]
    fn aliases_are_percent_encoded_in_paths() {
        assert_eq!(pod_path("web-0"), "/api/v1/pods/web-0");
        assert_eq!(pod_path("a/b c"), "/api/v1/pods/a%2Fb%20c");
    }
}
