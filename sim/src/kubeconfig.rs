//! The kubeconfig `--kubeconfig-out` writes: kubectl and PodWrangler reach podsim with it as
//! they would a real cluster, trusting podsim's CA rather than skipping verification.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::pki::Pki;

/// Name of the context (and user) authenticating with the bearer token; the current context.
pub const TOKEN_CONTEXT: &str = "podsim";
/// Name of the context (and user) authenticating with podsim's client certificate.
pub const CERT_CONTEXT: &str = "podsim-cert";

/// The kubeconfig for a podsim at `server`. With `pki` (TLS), the cluster carries the CA and a
/// second context authenticates with the client certificate; without, the server is plain http
/// and only the token context exists.
pub fn render(server: &str, token: &str, namespace: &str, pki: Option<&Pki>) -> String {
    let b64 = |pem: &str| STANDARD.encode(pem.as_bytes());
    let mut out = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: podsim\n  cluster:\n    server: {server}\n"
    );
    if let Some(pki) = pki {
        out += &format!(
            "    certificate-authority-data: {}\n",
            b64(&pki.ca_cert_pem)
        );
    }
    // A JSON string is a YAML double-quoted scalar: a token starting with `#`, `&` or `*`
    // stays a token.
    let token = serde_json::Value::from(token);
    out += &format!("users:\n- name: {TOKEN_CONTEXT}\n  user:\n    token: {token}\n");
    if let Some(pki) = pki {
        out += &format!(
            "- name: {CERT_CONTEXT}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pki.client_cert_pem),
            b64(&pki.client_key_pem)
        );
    }
    out += "contexts:\n";
    out += &context(TOKEN_CONTEXT, namespace);
    if pki.is_some() {
        out += &context(CERT_CONTEXT, namespace);
    }
    out += &format!("current-context: {TOKEN_CONTEXT}\npreferences: {{}}\n");
    out
}

/// A context on the podsim cluster whose user has the context's own name.
fn context(name: &str, namespace: &str) -> String {
    format!(
        "- name: {name}\n  context:\n    cluster: podsim\n    user: {name}\n    namespace: {namespace}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_has_no_ca_and_no_certificate_context() {
        let text = render("http://127.0.0.1:1", "t", "ns", None);
        assert!(text.contains("server: http://127.0.0.1:1\n"));
        assert!(text.contains("token: \"t\"\n"));
        assert!(!text.contains("certificate"));
        assert!(!text.contains("insecure"));
        assert!(!text.contains(CERT_CONTEXT));
        assert!(text.contains("current-context: podsim\n"));
    }

    #[test]
    fn tls_carries_the_ca_and_a_client_certificate_context() {
        let pki = Pki::generate("127.0.0.1").unwrap();
        let text = render("https://127.0.0.1:1", "t", "ns", Some(&pki));
        let ca = STANDARD.encode(pki.ca_cert_pem.as_bytes());
        assert!(text.contains(&format!("certificate-authority-data: {ca}\n")));
        assert!(!text.contains("insecure"));
        let key = STANDARD.encode(pki.client_key_pem.as_bytes());
        assert!(text.contains(&format!("client-key-data: {key}\n")));
        assert_eq!(text.matches("namespace: ns\n").count(), 2);
        assert!(text.contains("current-context: podsim\n"));
    }
}
