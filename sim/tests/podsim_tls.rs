//! TLS, podsim's default: https/wss with a server certificate from podsim's throwaway CA, and
//! client certificates from that CA accepted in place of the bearer token. Clients that trust the
//! CA get the same PlainTTY and exec service; plain ws://, unknown servers' trust and client
//! certificates from any other CA do not.

mod podsim_support;

use std::sync::Arc;

use podsim_support::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use testkit::{Podsim, PodsimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn tls_podsim(pods: usize) -> Podsim {
    Podsim::start_with(PodsimOptions {
        pods,
        tls: true,
        ..Default::default()
    })
}

/// A certificate and its key, in PEM.
struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    /// podsim's own client certificate, from its ready line.
    fn podsim(sim: &Podsim) -> Identity {
        Identity {
            cert_pem: sim.client_cert_pem().expect("client certificate").into(),
            key_pem: sim.client_key_pem().expect("client key").into(),
        }
    }

    /// A client certificate just like podsim's (same CN, clientAuth), signed by an impostor CA
    /// with the same name as podsim's.
    fn from_another_ca() -> Identity {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "podsim throwaway CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "podsim-admin");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Identity {
            cert_pem: params.signed_by(&key, &issuer).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Client TLS settings that trust `ca_pem` and present `identity`, if any.
fn client_config(ca_pem: &str, identity: Option<&Identity>) -> Arc<rustls::ClientConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Arc::new(match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .expect("client certificate and key match"),
        None => builder.with_no_client_auth(),
    })
}

fn trusting(ca_pem: &str, identity: Option<&Identity>) -> Connector {
    Connector::Rustls(client_config(ca_pem, identity))
}

/// One `GET path` over TLS to podsim, verifying its certificate for `server_name`, with no bearer
/// token. Returns the status, or the I/O error of a failed handshake.
async fn https_get(
    sim: &Podsim,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    path: &str,
) -> std::io::Result<u16> {
    let tcp = tokio::net::TcpStream::connect(&sim.info.address).await?;
    let name = ServerName::try_from(server_name.to_string()).expect("valid server name");
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = tokio::time::timeout(LONG, connector.connect(name, tcp))
        .await
        .expect("TLS handshake timed out")?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // With TLS 1.3 the server judges the client certificate after the client's side of the
    // handshake is done, so a refusal shows up here, as an alert.
    tokio::time::timeout(LONG, tls.read_to_end(&mut response))
        .await
        .expect("response timed out")?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))
}

#[tokio::test]
async fn wss_plaintty_and_exec_work_for_clients_that_trust_the_ca() {
    let sim = tls_podsim(2);
    assert!(sim.info.tls);
    assert!(
        sim.info.ws_base.starts_with("wss://"),
        "{}",
        sim.info.ws_base
    );
    assert!(sim.info.http_base.starts_with("https://"));
    let pod = &sim.info.pods[1];
    assert!(pod.plaintty_url.starts_with("wss://"));
    let ca = sim.ca_cert_pem().expect("CA in the ready line").to_string();

    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        pod.plaintty_url.as_str(),
        None,
        false,
        Some(trusting(&ca, None)),
    )
    .await
    .expect("wss PlainTTY connect");
    send_text(&mut ws, "echo tls-$((6*7))\r").await;
    read_until(&mut ws, "tls-42").await;

    let req = exec_request(
        &sim.info,
        &pod.name,
        &["sh", "-c", "echo secure; exit 4"],
        false,
        false,
        "v5.channel.k8s.io",
        None,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(trusting(&ca, None)),
    )
    .await
    .expect("wss exec connect");
    let out = collect_exec(&mut ws).await;
    assert_eq!(out.stdout, "secure\n");
    assert_eq!(out.status.unwrap()["details"]["causes"][0]["message"], "4");

    // The admin port stays plain HTTP and sees both connections.
    assert_ne!(sim.info.admin_address, sim.info.address);
    assert_eq!(sim.stats(&pod.name)["connections_total"], 2);
}

#[tokio::test]
async fn the_server_certificate_names_localhost_and_the_loopback_address() {
    let sim = tls_podsim(1);
    let config = client_config(sim.ca_cert_pem().unwrap(), None);
    for name in ["localhost", "127.0.0.1"] {
        // Verified and reached: only the missing credentials stop the request.
        let status = https_get(&sim, config.clone(), name, "/version").await;
        assert_eq!(status.unwrap(), 401, "server name {name}");
    }
    let status = https_get(&sim, config, "podsim.example", "/version").await;
    assert!(status.is_err(), "a name the certificate lacks must fail");
}

#[tokio::test]
async fn wss_rejects_clients_that_do_not_trust_the_ca_and_plain_ws() {
    let sim = tls_podsim(1);
    let pod = &sim.info.pods[0];
    // Default trust roots: podsim's CA is unknown.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let res = try_connect(pod.plaintty_url.as_str().into_client_request().unwrap()).await;
    assert!(res.is_err(), "an unknown CA must fail the handshake");
    let plain = pod.plaintty_url.replacen("wss://", "ws://", 1);
    let res = try_connect(plain.into_client_request().unwrap()).await;
    assert!(res.is_err(), "plain ws to the TLS port must fail");
    assert_eq!(sim.stats(&pod.name)["connections_total"], 0);
}

#[tokio::test]
async fn podsims_client_certificate_authenticates_like_the_token() {
    let sim = tls_podsim(1);
    let ca = sim.ca_cert_pem().unwrap().to_string();
    let me = Identity::podsim(&sim);
    let pods_path = format!("/api/v1/namespaces/{}/pods", sim.info.namespace);

    // No token, no certificate: the handshake is fine, the request is not.
    let anonymous = https_get(&sim, client_config(&ca, None), "localhost", &pods_path).await;
    assert_eq!(anonymous.unwrap(), 401);
    let with_cert = https_get(&sim, client_config(&ca, Some(&me)), "localhost", &pods_path).await;
    assert_eq!(with_cert.unwrap(), 200);

    // Exec too: the WebSocket upgrade carries no token at all.
    let pod = &sim.info.pods[0];
    let mut req = exec_request(
        &sim.info,
        &pod.name,
        &["sh", "-c", "echo by-certificate"],
        false,
        false,
        "v5.channel.k8s.io",
        None,
    );
    req.headers_mut().remove("Authorization");
    let refused = tokio_tungstenite::connect_async_tls_with_config(
        req.clone(),
        None,
        false,
        Some(trusting(&ca, None)),
    )
    .await
    .map(|_| ())
    .expect_err("no credentials at all");
    assert_eq!(status_of(&refused), Some(401), "{refused}");
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(trusting(&ca, Some(&me))),
    )
    .await
    .expect("exec with the client certificate");
    let out = collect_exec(&mut ws).await;
    assert_eq!(out.stdout, "by-certificate\n");
    assert_eq!(out.status.unwrap()["status"], "Success");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let sim = tls_podsim(1);
    let ca = sim.ca_cert_pem().unwrap().to_string();
    let stranger = Identity::from_another_ca();
    let pods_path = format!("/api/v1/namespaces/{}/pods", sim.info.namespace);

    // The verifier refuses the certificate, so the server ends the handshake with an alert
    // before any request is read.
    let refused = https_get(
        &sim,
        client_config(&ca, Some(&stranger)),
        "localhost",
        &pods_path,
    )
    .await
    .expect_err("a foreign client certificate must not get an HTTP response");
    assert!(refused.to_string().contains("alert"), "{refused}");

    let pod = &sim.info.pods[0];
    let mut req = exec_request(
        &sim.info,
        &pod.name,
        &["sh", "-c", "echo never"],
        false,
        false,
        "v5.channel.k8s.io",
        None,
    );
    req.headers_mut().remove("Authorization");
    let res = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(trusting(&ca, Some(&stranger))),
    )
    .await;
    assert!(res.is_err(), "exec with a foreign certificate must fail");
    assert_eq!(sim.stats(&pod.name)["connections_total"], 0);

    // podsim itself is unharmed, and its own certificate still works.
    let me = Identity::podsim(&sim);
    let status = https_get(&sim, client_config(&ca, Some(&me)), "127.0.0.1", &pods_path).await;
    assert_eq!(status.unwrap(), 200);
}
