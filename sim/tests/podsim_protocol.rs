//! podsim speaks PlainTTY and Kubernetes exec (v4/v5) over real sockets to real shells, and
//! checks tokens.

mod podsim_support;

use futures_util::{SinkExt, StreamExt};
use podsim_support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn plaintty_runs_an_interactive_shell_in_the_pod() {
    let sim = start(2);
    let pod = &sim.info.pods[1];
    let mut ws = connect_plaintty(&pod.plaintty_url).await;
    send_text(
        &mut ws,
        "echo \"[$POD_NAME:$POD_NAMESPACE:$(pwd):$(stty size)]\"\r",
    )
    .await;
    let dir = sim.workdir().join(&pod.name);
    let seen = read_until(
        &mut ws,
        &format!("[{}:default:{}:50 220]", pod.name, dir.display()),
    )
    .await;
    // A terminal translates newlines to CRLF.
    assert!(seen.contains("\r\n"), "{seen:?}");
    send_text(&mut ws, "exit\r").await;
    let end = tokio::time::timeout(LONG, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "connection should close when the shell exits");
}

#[tokio::test]
async fn plaintty_state_is_per_connection_and_files_are_per_pod() {
    let sim = start(2);
    let pod = &sim.info.pods[0];
    let mut a = connect_plaintty(&pod.plaintty_url).await;
    send_text(&mut a, "touch made-by-a; export X=only-a\r").await;
    send_text(&mut a, "echo \"x=[$X]\"\r").await;
    read_until(&mut a, "x=[only-a]").await;
    let mut b = connect_plaintty(&pod.plaintty_url).await;
    send_text(&mut b, "echo \"x=[$X] $(ls)\"\r").await;
    let seen = read_until(&mut b, "made-by-a").await;
    assert!(seen.contains("x=[] made-by-a"), "{seen:?}");
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let sim = start(1);
    let pod = &sim.info.pods[0];
    let bad = pod.plaintty_url.replace(&sim.info.token, "wrong");
    let err = try_connect(bad.into_client_request().unwrap())
        .await
        .expect_err("must fail");
    assert_eq!(status_of(&err), Some(401));
    let err = try_connect(exec_request(
        &sim.info,
        &pod.name,
        &["true"],
        false,
        false,
        "v5.channel.k8s.io",
        Some("nope"),
    ))
    .await
    .expect_err("must fail");
    assert_eq!(status_of(&err), Some(401));
    let (status, _) = testkit::http_request(
        &sim.info.address,
        "GET",
        "/api/v1/namespaces/default/pods",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(status, 401);
    let auth = format!("Bearer {}", sim.info.token);
    let (status, body) = testkit::http_request(
        &sim.info.address,
        "GET",
        "/api/v1/namespaces/default/pods",
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn exec_v5_separates_streams_and_reports_exit_code() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    let mut ws = exec(
        &sim.info,
        pod,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        false,
    )
    .await;
    let out = collect_exec(&mut ws).await;
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let status = out.status.expect("status frame");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    assert!(out.close_frame, "the server closes with a close frame");

    let mut ws = exec(
        &sim.info,
        pod,
        &["sh", "-c", "echo \"$HOSTNAME $HOME\""],
        false,
    )
    .await;
    let out = collect_exec(&mut ws).await;
    let dir = sim.workdir().join(pod);
    assert_eq!(out.stdout, format!("{pod} {}\n", dir.display()));
    assert_eq!(out.status.unwrap()["status"], "Success");
}

#[tokio::test]
async fn exec_v5_stdin_and_close_channel() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    let mut ws = exec(&sim.info, pod, &["sh", "-c", "wc -c; echo done"], true).await;
    ws.send(Message::binary(b"\x00hello".to_vec()))
        .await
        .unwrap();
    // [255, 0]: close stdin; wc sees end-of-file.
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    let out = collect_exec(&mut ws).await;
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["5", "done"]
    );
    assert_eq!(out.status.unwrap()["status"], "Success");
}

#[tokio::test]
async fn exec_v4_is_accepted_and_unknown_subprotocols_are_not() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    let (mut ws, resp) = tokio_tungstenite::connect_async(exec_request(
        &sim.info,
        pod,
        &["echo", "v4"],
        false,
        false,
        "v4.channel.k8s.io",
        None,
    ))
    .await
    .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "v4.channel.k8s.io"
    );
    let out = collect_exec(&mut ws).await;
    assert_eq!(out.stdout, "v4\n");
    let err = try_connect(exec_request(
        &sim.info,
        pod,
        &["true"],
        false,
        false,
        "base64.channel.k8s.io",
        None,
    ))
    .await
    .expect_err("must fail");
    assert_eq!(status_of(&err), Some(400));
}

#[tokio::test]
async fn exec_tty_uses_a_terminal_and_resizes() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    let mut ws = try_connect(exec_request(
        &sim.info,
        pod,
        &[
            "sh",
            "-c",
            "sleep 0.5; stty size; test -t 0 && echo is-a-tty",
        ],
        true,
        true,
        "v5.channel.k8s.io",
        None,
    ))
    .await
    .unwrap();
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":133,"Height":41}"#);
    ws.send(Message::binary(resize)).await.unwrap();
    let out = collect_exec(&mut ws).await;
    assert!(out.stdout.contains("41 133"), "{out:?}");
    assert!(out.stdout.contains("is-a-tty\r\n"), "{out:?}");
    assert_eq!(out.status.unwrap()["status"], "Success");
}

#[tokio::test]
async fn unknown_pod_is_404_and_missing_command_is_reported() {
    let sim = start(1);
    let err = try_connect(exec_request(
        &sim.info,
        "web-5d8f7-99999",
        &["true"],
        false,
        false,
        "v5.channel.k8s.io",
        None,
    ))
    .await
    .expect_err("must fail");
    assert_eq!(status_of(&err), Some(404));
    let mut ws = exec(
        &sim.info,
        &sim.info.pods[0].name,
        &["no-such-binary-here"],
        false,
    )
    .await;
    let out = collect_exec(&mut ws).await;
    let status = out.status.expect("status");
    assert_eq!(status["status"], "Failure");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("executable file not found"),
        "{status}"
    );
}

#[tokio::test]
async fn client_disconnect_kills_the_process() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    let marker = sim.workdir().join(pod).join("still-running");
    let mut ws = exec(
        &sim.info,
        pod,
        &[
            "sh",
            "-c",
            "echo started; while true; do touch still-running; sleep 0.1; done",
        ],
        false,
    )
    .await;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.starts_with(b"\x01started") => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(ws);
    assert!(testkit::wait_until(
        LONG,
        || sim.stats(pod)["connections_live"] == 0
    ));
    let _ = std::fs::remove_file(&marker);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !marker.exists(),
        "the loop must have been killed with its connection"
    );
    assert_eq!(sim.global_stats()["children"], 0);
}

#[tokio::test]
async fn exec_accepts_the_bearer_token_as_a_subprotocol() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    // base64url without padding, as browsers send it.
    let b64: String = {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = sim.info.token.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let mut req = exec_request(
        &sim.info,
        pod,
        &["echo", "via-subprotocol"],
        false,
        false,
        "",
        Some("wrong"),
    );
    req.headers_mut().remove("Authorization");
    let protocols = format!("base64url.bearer.authorization.k8s.io.{b64}, v5.channel.k8s.io");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("authorized by subprotocol");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "v5.channel.k8s.io"
    );
    let out = collect_exec(&mut ws).await;
    assert_eq!(out.stdout, "via-subprotocol\n");
}

#[tokio::test]
async fn pings_are_answered_while_the_shell_is_idle() {
    let sim = start(1);
    let mut ws = connect_plaintty(&sim.info.pods[0].plaintty_url).await;
    send_text(&mut ws, "echo idle-$((2*3))\r").await;
    read_until(&mut ws, "idle-6").await;
    for i in 0..3u8 {
        ws.send(Message::Ping(vec![b'p', i].into())).await.unwrap();
        let pong = tokio::time::timeout(LONG, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Pong(p))) => return p,
                    Some(Ok(_)) => {}
                    other => panic!("connection ended: {other:?}"),
                }
            }
        })
        .await
        .expect("pong");
        assert_eq!(&pong[..], &[b'p', i]);
    }
}
