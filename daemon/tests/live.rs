//! Live output and cancel, against a real daemon and podsim: a streamed exec shows output while
//! the command runs; `POST /api/v1/commands/{id}/cancel` interrupts it, records it `cancelled`
//! and keeps the pod's shell.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A streamed exec over the socket, read event by event (HTTP/1.1 chunked body).
struct EventStream {
    reader: BufReader<UnixStream>,
}

impl EventStream {
    fn open(d: &Daemon, alias: &str, command: &str) -> EventStream {
        let body = json!({"command": command, "timeout": 60});
        let s = EventStream::send(d, &format!("/api/v1/pods/{alias}/exec"), &body);
        EventStream::read(s)
    }

    /// Sends a streamed exec request; its answer is left unread.
    fn send(d: &Daemon, path: &str, body: &Value) -> UnixStream {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: pw\r\nAccept: application/x-ndjson\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        s
    }

    /// Reads the status line and headers of a streamed answer.
    fn read(s: UnixStream) -> EventStream {
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        EventStream { reader }
    }

    /// The next event, or `None` at the end of the body.
    fn next(&mut self) -> Option<Value> {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return None;
        }
        let mut chunk = vec![0u8; n + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        Some(serde_json::from_slice(&chunk[..n]).unwrap())
    }
}

#[test]
fn a_streamed_exec_shows_output_before_the_command_ends() {
    let sim = podsim(2);
    let d = start_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for (i, alias) in ["tty", "k8s"].iter().enumerate() {
        let done = sim
            .workdir()
            .join(&sim.info.pods[i].name)
            .join("stream-done");
        let mut events = EventStream::open(
            &d,
            alias,
            "for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; sleep 0.1; done; echo err >&2; touch stream-done",
        );
        let started = events.next().unwrap();
        assert_eq!(started["event"], "started", "{started}");
        assert!(started["id"].as_i64().unwrap() > 0);
        let first = events.next().unwrap();
        assert_eq!(first["event"], "stdout", "{first}");
        assert!(
            first["data"].as_str().unwrap().starts_with("line1"),
            "{first}"
        );
        assert!(
            !done.exists(),
            "{alias}: the first output came only after the command ended"
        );
        let mut streamed = first["data"].as_str().unwrap().to_owned();
        let mut last = None;
        while let Some(e) = events.next() {
            match e["event"].as_str().unwrap() {
                "stdout" => streamed.push_str(e["data"].as_str().unwrap()),
                "stderr" => assert_eq!(*alias, "k8s", "stderr apart only on Kubernetes"),
                "finished" => last = Some(e),
                other => panic!("unexpected event {other}: {e}"),
            }
        }
        let record = &last.expect("a finished event")["record"];
        assert_eq!(record["status"], "succeeded", "{record}");
        assert_eq!(record["id"], started["id"]);
        assert_eq!(streamed, record["stdout"].as_str().unwrap(), "{alias}");
    }
}

#[test]
fn cancel_stops_the_command_records_it_and_keeps_the_shell() {
    let sim = podsim(2);
    let d = start_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for alias in ["tty", "k8s"] {
        exec_ok(&d, Via::Unix, alias, "export KEPT=yes");
        let mut events = EventStream::open(&d, alias, "echo started; sleep 37");
        let id = events.next().unwrap()["id"].as_i64().unwrap();
        assert_eq!(events.next().unwrap()["event"], "stdout");
        let r = d.unix("POST", &format!("/api/v1/commands/{id}/cancel"), None);
        assert_eq!(r.status, 202, "{}", r.body);
        let mut last = None;
        while let Some(e) = events.next() {
            last = Some(e);
        }
        let last = last.unwrap();
        assert_eq!(last["event"], "finished", "{last}");
        assert_eq!(last["record"]["status"], "cancelled", "{last}");
        let stored = d
            .unix("GET", &format!("/api/v1/commands/{id}"), None)
            .json();
        assert_eq!(stored["status"], "cancelled", "{stored}");
        let next = exec_ok(
            &d,
            Via::Unix,
            alias,
            "echo ${KEPT:-lost}; ps -eo args | grep -cx 'sleep 37'; true",
        );
        assert_eq!(next["stdout"], "yes\n0\n", "{alias}: {next}");
        // Cancelling what is no longer running is a conflict.
        let again = d.unix("POST", &format!("/api/v1/commands/{id}/cancel"), None);
        assert_eq!(again.status, 409, "{}", again.body);
        assert_eq!(again.json()["code"], "command_not_running");
    }
    let r = d.unix("POST", "/api/v1/commands/999999/cancel", None);
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A client that reads a streamed fan-out slowly holds the job back (the stream is bounded),
/// but still gets every pod's `started` event, each before that pod's output.
#[test]
fn a_slow_reader_of_a_streamed_fan_out_still_gets_every_started_event() {
    const PODS: usize = 16;
    let sim = podsim(PODS);
    let d = start_daemon();
    for i in 0..PODS {
        register(
            &d,
            Via::Unix,
            &plaintty_body(&sim, &format!("p{i:02}"), i, &["all"]),
        );
    }
    wait_ready(&d, PODS);
    // The first pod's burst fills the socket; the others' many short lines fill the queue.
    let body = json!({
        "command": "case $POD_NAME in *00000) head -c 1000000 /dev/zero | tr '\\0' x;; *) for i in $(seq 60); do echo $i; sleep 0.005; done;; esac",
        "tag": "all",
        "concurrency": 4,
        "timeout": 120,
    });
    let s = EventStream::send(&d, "/api/v1/exec", &body);
    std::thread::sleep(Duration::from_secs(3));
    let mut events = EventStream::read(s);
    let mut started = Vec::new();
    let mut finished = 0;
    while let Some(e) = events.next() {
        match e["event"].as_str().unwrap() {
            "started" => started.push(e["alias"].as_str().unwrap().to_owned()),
            "stdout" => {
                let alias = e["alias"].as_str().unwrap();
                assert!(
                    started.iter().any(|a| a == alias),
                    "output of {alias} before its started event"
                );
            }
            "finished" => finished += 1,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    started.sort();
    let all: Vec<String> = (0..PODS).map(|i| format!("p{i:02}")).collect();
    assert_eq!(started, all);
    assert_eq!(finished, PODS);
}
