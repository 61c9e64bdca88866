//! `--tls`: podsim serves https/wss with a self-signed certificate; clients that trust that
//! certificate get the same PlainTTY and exec service, plain ws:// does not.

mod podsim_support;

use std::sync::Arc;

use podsim_support::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use testkit::{Podsim, PodsimOptions};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn trusting(pem: &str) -> Connector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM"))
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Connector::Rustls(Arc::new(config))
}

#[tokio::test]
async fn wss_plaintty_and_exec_work_with_the_self_signed_certificate() {
    let sim = Podsim::start_with(PodsimOptions {
        pods: 2,
        tls: true,
        ..Default::default()
    });
    assert!(sim.info.tls);
    assert!(
        sim.info.ws_base.starts_with("wss://"),
        "{}",
        sim.info.ws_base
    );
    assert!(sim.info.http_base.starts_with("https://"));
    let pod = &sim.info.pods[1];
    assert!(pod.plaintty_url.starts_with("wss://"));
    let pem = sim
        .info
        .ca_cert_pem
        .clone()
        .expect("certificate in the ready line");

    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        pod.plaintty_url.as_str(),
        None,
        false,
        Some(trusting(&pem)),
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
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(trusting(&pem)))
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
async fn wss_rejects_clients_that_do_not_trust_the_certificate_and_plain_ws() {
    let sim = Podsim::start_with(PodsimOptions {
        pods: 1,
        tls: true,
        ..Default::default()
    });
    let pod = &sim.info.pods[0];
    // Default trust roots: the self-signed certificate is unknown.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let res = try_connect(pod.plaintty_url.as_str().into_client_request().unwrap()).await;
    assert!(
        res.is_err(),
        "an untrusted certificate must fail the handshake"
    );
    let plain = pod.plaintty_url.replacen("wss://", "ws://", 1);
    let res = try_connect(plain.into_client_request().unwrap()).await;
    assert!(res.is_err(), "plain ws to the TLS port must fail");
    assert_eq!(sim.stats(&pod.name)["connections_total"], 0);
}
