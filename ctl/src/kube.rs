//! Kubernetes credentials for `pod add`, `pod update` and `pod import`, worked out on the
//! user's side: the daemon takes no kubeconfig path (it must never read a caller's files or run
//! a caller's exec plugin), so pwctl reads the kubeconfig as the person typing and sends the
//! server, CA and token or client certificate explicitly, or names a cluster the daemon's
//! administrator configured.

use std::path::Path;

use podwrangler::kubeconfig::{KubeCredentials, credentials_from_kubeconfig};
use podwrangler::{PodError, Secret, cleartext_refusal};

use crate::error::CtlError;

/// The Kubernetes flags one command was given.
#[derive(Debug, Default)]
pub struct KubeFlags<'a> {
    pub cluster: Option<&'a str>,
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
    pub server: Option<&'a str>,
    /// A Kubernetes exec URL (`pod add --url`); it names the server too.
    pub url: Option<&'a str>,
    /// Already read from `--token` or `--token-file`.
    pub token: Option<Secret>,
    pub certificate_authority: Option<&'a Path>,
    pub insecure_skip_tls_verify: bool,
    /// Read the default kubeconfig when no credentials are given (`pod add`, `pod import`);
    /// `pod update` changes only what it is told, so it reads one only when named.
    pub kubeconfig_by_default: bool,
}

/// What the request carries: the wire fields of `PodCreate`, `PodUpdate` and `ImportRequest`.
#[derive(Debug, Default, PartialEq)]
pub struct KubeAccess {
    pub cluster: Option<String>,
    pub server: Option<String>,
    pub certificate_authority: Option<String>,
    pub insecure_skip_tls_verify: bool,
    pub token: Option<Secret>,
    pub client_certificate: Option<String>,
    pub client_key: Option<Secret>,
    /// The kubeconfig context's namespace: the default when no `--namespace` is given. `None`
    /// when no kubeconfig was read, or when a URL names the namespace itself.
    pub namespace: Option<String>,
}

/// Resolves the flags, reading the kubeconfig (and running its exec plugin) when they call for
/// it.
pub fn resolve(flags: KubeFlags<'_>) -> Result<KubeAccess, CtlError> {
    resolve_with(flags, load_kubeconfig)
}

/// Where the server and credentials come from.
#[derive(Debug, PartialEq)]
enum Source {
    /// `--cluster NAME`: the daemon's own configuration.
    DaemonCluster,
    /// `--server`/`--url` with `--token`, or `pod update` without a kubeconfig: as given.
    Explicit,
    /// The user's kubeconfig, with `--token` and `--certificate-authority` over it.
    Kubeconfig,
}

fn source(flags: &KubeFlags<'_>) -> Source {
    let names_kubeconfig = flags.kubeconfig.is_some() || flags.context.is_some();
    let names_server = flags.server.is_some() || flags.url.is_some();
    if flags.cluster.is_some() {
        Source::DaemonCluster
    } else if names_kubeconfig {
        Source::Kubeconfig
    } else if (names_server && flags.token.is_some()) || !flags.kubeconfig_by_default {
        Source::Explicit
    } else {
        Source::Kubeconfig
    }
}

fn resolve_with(
    flags: KubeFlags<'_>,
    load: impl FnOnce(Option<&Path>, Option<&str>) -> Result<KubeCredentials, CtlError>,
) -> Result<KubeAccess, CtlError> {
    match source(&flags) {
        Source::DaemonCluster => daemon_cluster(&flags),
        Source::Explicit => explicit(flags),
        Source::Kubeconfig => {
            if flags.token.is_some() && flags.server.is_some() {
                return Err(CtlError::Usage(
                    "--server with --token reads no kubeconfig; drop --kubeconfig/--context, \
                     or --server to use the context's"
                        .into(),
                ));
            }
            let creds = load(flags.kubeconfig, flags.context)?;
            from_kubeconfig(flags, creds)
        }
    }
}

fn daemon_cluster(flags: &KubeFlags<'_>) -> Result<KubeAccess, CtlError> {
    let given = [
        ("--kubeconfig", flags.kubeconfig.is_some()),
        ("--context", flags.context.is_some()),
        ("--server", flags.server.is_some()),
        ("--url", flags.url.is_some()),
        ("--token", flags.token.is_some()),
        (
            "--certificate-authority",
            flags.certificate_authority.is_some(),
        ),
        ("--insecure-skip-tls-verify", flags.insecure_skip_tls_verify),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        // The daemon never pairs its configured credentials with a caller's server or
        // credentials; say so before it does.
        return Err(CtlError::Usage(format!(
            "--cluster uses the daemon's configured server and credentials; {flag} cannot go with it"
        )));
    }
    Ok(KubeAccess {
        cluster: flags.cluster.map(str::to_owned),
        ..KubeAccess::default()
    })
}

fn explicit(flags: KubeFlags<'_>) -> Result<KubeAccess, CtlError> {
    let access = KubeAccess {
        server: flags.server.map(str::to_owned),
        certificate_authority: flags
            .certificate_authority
            .map(read_certificates)
            .transpose()?,
        insecure_skip_tls_verify: flags.insecure_skip_tls_verify,
        token: flags.token,
        ..KubeAccess::default()
    };
    refuse_cleartext(flags.server.or(flags.url), &access)?;
    Ok(access)
}

fn from_kubeconfig(flags: KubeFlags<'_>, creds: KubeCredentials) -> Result<KubeAccess, CtlError> {
    // A kubeconfig's credentials go to that kubeconfig's server only: a --server or --url
    // naming another one would hand them to whoever runs it.
    for (flag, target) in [("--server", flags.server), ("--url", flags.url)] {
        if let Some(target) = target
            && !is_under_server(target, &creds.server)
        {
            return Err(CtlError::BadInput(format!(
                "{flag} {} is not the kubeconfig context's server ({}), and its credentials \
                 are sent to their own server only; pass --token for that server, or pick \
                 the context with --context",
                podwrangler::redact_url(target),
                podwrangler::redact_url(&creds.server)
            )));
        }
    }
    // --token replaces the context's credentials, as with kubectl.
    let (token, client_certificate, client_key) = match flags.token {
        Some(token) => (Some(token), None, None),
        None => (creds.token, creds.client_certificate, creds.client_key),
    };
    let certificate_authority = match flags.certificate_authority {
        Some(path) => Some(read_certificates(path)?),
        None => creds.certificate_authority,
    };
    let access = KubeAccess {
        cluster: None,
        // A URL carries the server (and the namespace) itself.
        server: flags.url.is_none().then_some(creds.server),
        certificate_authority,
        insecure_skip_tls_verify: flags.insecure_skip_tls_verify || creds.insecure_skip_tls_verify,
        token,
        client_certificate,
        client_key,
        namespace: flags.url.is_none().then_some(creds.namespace),
    };
    let server = flags.url.or(access.server.as_deref());
    refuse_cleartext(server, &access)?;
    Ok(access)
}

/// Tokens and keys go over TLS, or in clear text to loopback only.
fn refuse_cleartext(server: Option<&str>, access: &KubeAccess) -> Result<(), CtlError> {
    let has_secret = access.token.is_some() || access.client_key.is_some();
    match server.and_then(cleartext_refusal) {
        Some(why) if has_secret => Err(CtlError::BadInput(why)),
        _ => Ok(()),
    }
}

/// True when `url` is `server` itself or a path below it (same scheme, host and port).
fn is_under_server(url: &str, server: &str) -> bool {
    let (Ok(url), Ok(server)) = (url::Url::parse(url), url::Url::parse(server)) else {
        return false;
    };
    // An exec URL may say ws(s):// where the kubeconfig says http(s)://.
    let scheme = |u: &url::Url| match u.scheme() {
        "ws" => "http".to_owned(),
        "wss" => "https".to_owned(),
        other => other.to_owned(),
    };
    let base = server.path().trim_end_matches('/');
    let path = url.path();
    scheme(&url) == scheme(&server)
        && url.host_str() == server.host_str()
        && url.port_or_known_default() == server.port_or_known_default()
        && (path.trim_end_matches('/') == base || path.starts_with(&format!("{base}/")))
}

fn read_certificates(path: &Path) -> Result<String, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CtlError::BadInput(format!(
            "cannot read the certificate authority file {}: {e}",
            path.display()
        ))
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(CtlError::BadInput(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(text)
}

/// What to do instead when no kubeconfig can be used.
const WAYS_OUT: &str = "pass --kubeconfig FILE or --context NAME, --server with --token, or a \
                        cluster the daemon knows with --cluster NAME (pwctl clusters)";

/// Runs the library's async kubeconfig resolution on a runtime of its own: pwctl is otherwise
/// a blocking program, and this is its only async call.
fn load_kubeconfig(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<KubeCredentials, CtlError> {
    if path.is_none() {
        no_default_kubeconfig()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::BadInput(format!("cannot read the kubeconfig: {e}")))?;
    runtime
        .block_on(credentials_from_kubeconfig(path, context))
        .map_err(|e| kubeconfig_error(e, context))
}

fn kubeconfig_error(e: PodError, context: Option<&str>) -> CtlError {
    let what = match e {
        // Its Display says "Kubernetes API: ..." though no API was asked.
        PodError::Kubernetes(message) => message,
        other => other.to_string(),
    };
    let context = context
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default();
    CtlError::BadInput(format!(
        "cannot get Kubernetes credentials from your kubeconfig{context}: {what}; {WAYS_OUT}"
    ))
}

/// Says plainly when there is no kubeconfig where kubectl would look ($KUBECONFIG, then
/// ~/.kube/config), rather than as a file-not-found from deep inside kube.
fn no_default_kubeconfig() -> Result<(), CtlError> {
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    let default = directories::BaseDirs::new().map(|d| d.home_dir().join(".kube").join("config"));
    match default {
        Some(path) if path.exists() => Ok(()),
        _ => Err(CtlError::BadInput(format!(
            "no kubeconfig to read Kubernetes credentials from ($KUBECONFIG is not set and \
             ~/.kube/config does not exist); {WAYS_OUT}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> KubeCredentials {
        KubeCredentials {
            server: "https://10.0.0.1:6443".into(),
            certificate_authority: Some("CA-PEM".into()),
            insecure_skip_tls_verify: false,
            token: None,
            client_certificate: Some("CERT-PEM".into()),
            client_key: Some(Secret::new("KEY-PEM")),
            namespace: "team-a".into(),
        }
    }

    fn no_kubeconfig(_: Option<&Path>, _: Option<&str>) -> Result<KubeCredentials, CtlError> {
        panic!("no kubeconfig may be read here")
    }

    fn add_flags<'a>() -> KubeFlags<'a> {
        KubeFlags {
            kubeconfig_by_default: true,
            ..KubeFlags::default()
        }
    }

    #[test]
    fn the_default_kubeconfig_is_read_and_sent_explicitly() {
        let mut asked = None;
        let access = resolve_with(
            KubeFlags {
                context: Some("prod"),
                ..add_flags()
            },
            |path, context| {
                asked = Some((path.map(Path::to_owned), context.map(str::to_owned)));
                Ok(creds())
            },
        )
        .unwrap();
        assert_eq!(asked, Some((None, Some("prod".into()))));
        assert_eq!(access.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(access.certificate_authority.as_deref(), Some("CA-PEM"));
        assert_eq!(access.client_certificate.as_deref(), Some("CERT-PEM"));
        assert_eq!(access.client_key.unwrap().expose(), "KEY-PEM");
        assert_eq!(access.namespace.as_deref(), Some("team-a"));
        assert!(access.cluster.is_none());
    }

    #[test]
    fn a_cluster_reads_nothing_and_goes_alone() {
        let access = resolve_with(
            KubeFlags {
                cluster: Some("prod"),
                ..add_flags()
            },
            no_kubeconfig,
        )
        .unwrap();
        assert_eq!(
            access,
            KubeAccess {
                cluster: Some("prod".into()),
                ..KubeAccess::default()
            }
        );
        let e = resolve_with(
            KubeFlags {
                cluster: Some("prod"),
                server: Some("https://x"),
                ..add_flags()
            },
            no_kubeconfig,
        )
        .unwrap_err();
        assert!(
            matches!(e, CtlError::Usage(ref m) if m.contains("--server")),
            "{e}"
        );
    }

    #[test]
    fn server_with_token_reads_no_kubeconfig() {
        let access = resolve_with(
            KubeFlags {
                server: Some("http://127.0.0.1:8443"),
                token: Some(Secret::new("t")),
                ..add_flags()
            },
            no_kubeconfig,
        )
        .unwrap();
        assert_eq!(access.server.as_deref(), Some("http://127.0.0.1:8443"));
        assert_eq!(access.token.unwrap().expose(), "t");
        assert!(access.namespace.is_none());
    }

    #[test]
    fn update_reads_a_kubeconfig_only_when_named() {
        let access = resolve_with(KubeFlags::default(), no_kubeconfig).unwrap();
        assert_eq!(access, KubeAccess::default());
    }

    #[test]
    fn a_token_flag_replaces_the_contexts_credentials() {
        let access = resolve_with(
            KubeFlags {
                token: Some(Secret::new("mine")),
                ..add_flags()
            },
            |_, _| Ok(creds()),
        )
        .unwrap();
        assert_eq!(access.token.unwrap().expose(), "mine");
        assert!(access.client_certificate.is_none() && access.client_key.is_none());
        assert_eq!(access.server.as_deref(), Some("https://10.0.0.1:6443"));
    }

    #[test]
    fn kubeconfig_credentials_never_go_to_another_server() {
        for (server, url) in [
            (Some("https://evil.example:6443"), None),
            (
                None,
                Some("https://evil.example/api/v1/namespaces/a/pods/b/exec"),
            ),
        ] {
            let e = resolve_with(
                KubeFlags {
                    server,
                    url,
                    ..add_flags()
                },
                |_, _| Ok(creds()),
            )
            .unwrap_err();
            assert!(matches!(e, CtlError::BadInput(_)), "{e}");
            assert!(e.to_string().contains("own server"), "{e}");
        }
        // The context's own server, by URL: the URL carries server and namespace.
        let access = resolve_with(
            KubeFlags {
                url: Some("wss://10.0.0.1:6443/api/v1/namespaces/a/pods/b/exec"),
                ..add_flags()
            },
            |_, _| Ok(creds()),
        )
        .unwrap();
        assert!(access.server.is_none() && access.namespace.is_none());
        assert!(access.client_key.is_some());
    }

    #[test]
    fn servers_compare_by_origin_and_path_prefix() {
        assert!(is_under_server("https://h:6443/api/v1/x", "https://h:6443"));
        assert!(is_under_server(
            "https://h/k8s/c1/api",
            "https://h:443/k8s/c1/"
        ));
        assert!(!is_under_server(
            "https://h/k8s/c10/api",
            "https://h/k8s/c1"
        ));
        assert!(!is_under_server("http://h:6443/api", "https://h:6443"));
        assert!(!is_under_server("https://h:6444/api", "https://h:6443"));
    }

    #[test]
    fn tokens_are_not_sent_in_clear_text_beyond_loopback() {
        let e = resolve_with(
            KubeFlags {
                server: Some("http://10.1.1.1:8080"),
                token: Some(Secret::new("t")),
                ..add_flags()
            },
            no_kubeconfig,
        )
        .unwrap_err();
        assert!(matches!(e, CtlError::BadInput(_)), "{e}");
    }

    #[test]
    fn kubeconfig_files_are_read_with_token_files_and_errors_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "file-token").unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
                 clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:9'}}}}]\n\
                 users: [{{name: u, user: {{tokenFile: '{}'}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: k, user: u, namespace: ns1}}}}]\n",
                token_file.display()
            ),
        )
        .unwrap();
        let access = resolve(KubeFlags {
            kubeconfig: Some(&config),
            ..add_flags()
        })
        .unwrap();
        assert_eq!(access.token.unwrap().expose(), "file-token");
        assert_eq!(access.server.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(access.namespace.as_deref(), Some("ns1"));

        let e = resolve(KubeFlags {
            kubeconfig: Some(&config),
            context: Some("nope"),
            ..add_flags()
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(e.to_string().contains("context nope"), "{e}");
        assert!(!e.to_string().contains("Kubernetes API"), "{e}");

        let missing = dir.path().join("missing");
        let e = resolve(KubeFlags {
            kubeconfig: Some(&missing),
            ..add_flags()
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
    }
}
