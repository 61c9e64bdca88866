//! PlainTTY: a web terminal at `wss://HOST/exec/{service_id}/?token=JWT&cols=220&pod=POD` that
//! carries raw terminal bytes over a TTY.

use crate::error::{PodError, Result};
use crate::models::{
    DEFAULT_TERMINAL_COLS, PodEndpoint, PodIdentity, ProviderConfig, ProviderKind, WssSchema,
};
use crate::secret::{Secret, redact_url};
use crate::session::Transport;

use super::{BoxFuture, ConnectPlan, Provider};

/// Sent once after connecting: no echo, no prompts, no line editing (so no bracketed paste and no
/// readline redisplay), no history, a dumb terminal. Each step tolerates shells that lack it.
pub const TTY_INIT_SCRIPT: &str = "stty -echo 2>/dev/null; \
bind 'set enable-bracketed-paste off' 2>/dev/null; \
set +o emacs 2>/dev/null; set +o vi 2>/dev/null; set +o history 2>/dev/null; \
PS1=''; PS2=''; PROMPT_COMMAND=''; unset HISTFILE 2>/dev/null; \
export TERM=dumb PAGER=cat GIT_PAGER=cat\n";

/// The PlainTTY web-terminal provider.
#[derive(Clone, Debug)]
pub struct PlainTtyProvider {
    /// Terminal width asked for when the identity does not say.
    pub cols: u16,
}

impl Default for PlainTtyProvider {
    fn default() -> Self {
        PlainTtyProvider {
            cols: DEFAULT_TERMINAL_COLS,
        }
    }
}

impl PlainTtyProvider {
    pub fn new(cols: u16) -> Self {
        PlainTtyProvider { cols }
    }

    /// The terminal URL for `endpoint` (with its token in the query).
    pub fn build_url(&self, endpoint: &PodEndpoint) -> Result<String> {
        let ProviderConfig::PlainTty { base_url } = &endpoint.provider else {
            return Err(PodError::ConfigValidation {
                field: "provider".into(),
                reason: "the PlainTTY provider needs a PlainTTY endpoint".into(),
            });
        };
        let id = &endpoint.identity;
        let service_id = id
            .cluster
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PodError::ConfigValidation {
                field: "cluster".into(),
                reason: "a PlainTTY endpoint needs the service id (identity.cluster)".into(),
            })?;
        if id.pod_name.is_empty() {
            return Err(PodError::ConfigValidation {
                field: "pod_name".into(),
                reason: "must not be empty".into(),
            });
        }
        let base = base_url.trim_end_matches('/');
        let parsed = url::Url::parse(base).map_err(|e| PodError::UrlParse {
            url: redact_url(base),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(PodError::UrlParse {
                url: redact_url(base),
                reason: "the base URL must start with ws:// or wss://".into(),
            });
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(token) = &endpoint.token {
            query.append_pair("token", token.expose());
        }
        let cols = if id.cols == 0 { self.cols } else { id.cols };
        query.append_pair("cols", &cols.to_string());
        query.append_pair("pod", &id.pod_name);
        if service_id.contains(['/', '?', '#', ' ']) {
            return Err(PodError::ConfigValidation {
                field: "cluster".into(),
                reason: "the service id must not contain '/', '?', '#' or spaces".into(),
            });
        }
        Ok(format!("{base}/exec/{service_id}/?{}", query.finish()))
    }
}

impl Provider for PlainTtyProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::PlainTty
    }

    fn parse_url(&self, url: &str) -> Result<PodEndpoint> {
        let shown = redact_url(url);
        let err = |reason: &str| PodError::UrlParse {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| err(&e.to_string()))?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(err("expected a ws:// or wss:// URL"));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| err("the URL has no host"))?;
        let segments: Vec<&str> = parsed
            .path_segments()
            .map(|s| s.collect())
            .unwrap_or_default();
        let exec_at = segments
            .iter()
            .rposition(|s| *s == "exec")
            .ok_or_else(|| err("expected a path like /exec/{service_id}/"))?;
        let service_id = segments
            .get(exec_at + 1)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("the service id after /exec/ is missing"))?;
        // Kept as it appears in the path (service ids are plain names or numbers), so that
        // building the URL again gives the same text.
        let service_id = (*service_id).to_owned();
        let mut token = None;
        let mut pod = None;
        let mut cols = None;
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "token" if !v.is_empty() => token = Some(Secret::new(v.into_owned())),
                "pod" if !v.is_empty() => pod = Some(v.into_owned()),
                "cols" => {
                    cols = Some(
                        v.parse::<u16>()
                            .ok()
                            .filter(|c| *c > 0)
                            .ok_or_else(|| err("cols must be a positive number"))?,
                    )
                }
                _ => {}
            }
        }
        let pod = pod.ok_or_else(|| err("the pod query parameter is missing"))?;
        let prefix = segments[..exec_at].join("/");
        let mut base_url = format!("{}://{host}", parsed.scheme());
        if let Some(port) = parsed.port() {
            base_url.push_str(&format!(":{port}"));
        }
        if !prefix.is_empty() {
            base_url.push('/');
            base_url.push_str(&prefix);
        }
        let mut identity = PodIdentity::new(pod);
        identity.cluster = Some(service_id);
        identity.cols = cols.unwrap_or(self.cols);
        Ok(PodEndpoint {
            identity,
            provider: ProviderConfig::PlainTty { base_url },
            token,
            client_key: None,
        })
    }

    fn prepare<'a>(&'a self, endpoint: &'a PodEndpoint) -> BoxFuture<'a, Result<ConnectPlan>> {
        Box::pin(async move {
            Ok(ConnectPlan {
                schema: WssSchema {
                    url: self.build_url(endpoint)?,
                    headers: Vec::new(),
                    subprotocols: Vec::new(),
                    is_binary_framed: false,
                    tty: true,
                },
                tls: None,
                namespace: endpoint.identity.namespace.clone(),
            })
        })
    }

    fn init_shell<'a>(
        &'a self,
        transport: &'a mut Transport,
        _schema: &'a WssSchema,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { transport.send(TTY_INIT_SCRIPT.as_bytes()).await })
    }

    fn list_pods<'a>(
        &'a self,
        target: &'a ProviderConfig,
        _token: Option<&'a Secret>,
        _client_key: Option<&'a Secret>,
        _namespace: &'a str,
        _label_selector: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodIdentity>>> {
        Box::pin(async move {
            Err(PodError::ConfigValidation {
                field: "provider".into(),
                reason: format!(
                    "a PlainTTY terminal ({}) has no API to list pods; register each pod by its URL",
                    match target {
                        ProviderConfig::PlainTty { base_url } => redact_url(base_url),
                        ProviderConfig::Kubernetes(_) => "kubernetes".into(),
                    }
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_terminal_url() {
        let p = PlainTtyProvider::default();
        let ep = p
            .parse_url("wss://k8s.provider.com/exec/45582/?token=eyJ.abc&cols=180&pod=my-app-deploy-abc12-xyz99")
            .unwrap();
        assert_eq!(ep.identity.pod_name, "my-app-deploy-abc12-xyz99");
        assert_eq!(ep.identity.cluster.as_deref(), Some("45582"));
        assert_eq!(ep.identity.service.as_deref(), Some("my-app-deploy"));
        assert_eq!(ep.identity.deployment.as_deref(), Some("abc12"));
        assert_eq!(ep.identity.cols, 180);
        assert_eq!(ep.token.as_ref().unwrap().expose(), "eyJ.abc");
        assert_eq!(
            ep.provider,
            ProviderConfig::PlainTty {
                base_url: "wss://k8s.provider.com".into()
            }
        );
    }

    #[test]
    fn round_trips_wss_and_ws() {
        let p = PlainTtyProvider::default();
        for url in [
            "wss://k8s.provider.com/exec/45582/?token=eyJhbGciOi.J9.x_y-z&cols=220&pod=my-app-abc-xyz",
            "ws://127.0.0.1:40123/exec/sim/?token=T&cols=220&pod=web-5d8f7-00000",
            "wss://gw.example.com:8443/term/exec/7/?token=a%2Bb%3D&cols=100&pod=a-b-c",
        ] {
            let ep = p.parse_url(url).unwrap();
            assert_eq!(p.build_url(&ep).unwrap(), url);
        }
    }

    #[test]
    fn missing_parts_are_url_errors_without_the_token() {
        let p = PlainTtyProvider::default();
        for url in [
            "https://h/exec/1/?token=SEKRIT&pod=x",
            "wss://h/exec/?token=SEKRIT&pod=x",
            "wss://h/exec/1/?token=SEKRIT",
            "wss://h/shell/1/?token=SEKRIT&pod=x",
            "wss://h/exec/1/?token=SEKRIT&pod=x&cols=wide",
        ] {
            let e = p.parse_url(url).unwrap_err();
            assert!(matches!(e, PodError::UrlParse { .. }), "{url}: {e}");
            assert!(!e.to_string().contains("SEKRIT"), "{e}");
            assert!(!format!("{e:?}").contains("SEKRIT"), "{e:?}");
        }
    }

    #[test]
    fn building_needs_the_service_id() {
        let p = PlainTtyProvider::default();
        let ep = PodEndpoint {
            identity: PodIdentity::new("web-1"),
            provider: ProviderConfig::PlainTty {
                base_url: "wss://h".into(),
            },
            token: None,
            client_key: None,
        };
        assert!(matches!(
            p.build_url(&ep),
            Err(PodError::ConfigValidation { .. })
        ));
    }
}
