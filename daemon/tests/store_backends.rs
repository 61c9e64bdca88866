//! The store against real databases: each scenario runs on a SQLite file in a temp dir and on a
//! fresh database of the PostgreSQL server in `PODWRANGLER_TEST_DATABASE_URL`, through the
//! `StoreActor`s the daemon uses.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use podwrangler::api::{CommandRecord, CommandStatus};
use podwrangler::{KubernetesTarget, PodIdentity, ProviderConfig, ProviderKind, Secret};
use podwranglerd::store::sets::{DeleteSet, InsertSet, ListSets, PodSetRow};
use podwranglerd::store::{
    self, DeletePod, FinishCommand, GetCommand, GetPod, HistoryFilter, InsertPod, InterruptRunning,
    ListCommands, ListPods, ListPodsByTag, NewPod, Ping, PodChanges, StartCommand, Store,
    StoreError, StoreHandle, UpdatePod,
};
use testkit::pg::TestDb;

testkit::on_both_backends!(
    "store_":
    pod_crud,
    tags_filter_pods,
    command_start_and_finish,
    history_filters,
    cursor_paging_visits_every_row_once,
    running_rows_become_interrupted_at_start,
    concurrent_writers_do_not_fail,
    pod_sets_and_their_history,
);

/// Runs `f` inside an actix System with a freshly started store.
fn with_store<T, F, Fut>(url: &str, f: F) -> T
where
    F: FnOnce(StoreHandle) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    actix_rt::System::new().block_on(async {
        let handle = store::start(url, 3).expect("store starts");
        f(handle).await
    })
}

fn plaintty_pod(alias: &str, tags: &[&str]) -> NewPod {
    NewPod {
        alias: alias.into(),
        provider: ProviderKind::PlainTty,
        identity: PodIdentity::new(format!("{alias}-5d8f7-00000")),
        config: ProviderConfig::PlainTty {
            base_url: "ws://127.0.0.1:40123".into(),
        },
        token: Some(Secret::new(format!("tok-{alias}-s3cret"))),
        client_key: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// A clean finish: status succeeded, exit 0, `stdout`, nothing else.
fn succeeded(
    id: i64,
    stdout: String,
    finished_at: DateTime<Utc>,
    duration_ms: f64,
) -> FinishCommand {
    FinishCommand {
        id,
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        stdout,
        stderr: String::new(),
        error: None,
        truncated: false,
        finished_at,
        duration_ms,
        session_restarted: false,
    }
}

/// A whole-microsecond instant, which both backends store exactly.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 123_456_000)
        .unwrap()
}

fn pod_crud(db: TestDb) {
    with_store(db.url(), |h| async move {
        let a = h.addr.clone();
        let created = a
            .send(InsertPod(plaintty_pod("web-1", &["web", "eu"])))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created.tags, ["eu", "web"], "tags come back sorted");
        assert!(
            !format!("{created:?}").contains("s3cret"),
            "Debug must not show the token"
        );

        let got = a
            .send(GetPod {
                alias: "web-1".into(),
            })
            .await
            .unwrap()
            .unwrap()
            .expect("pod stored");
        assert_eq!(got, created, "what is read back equals what was written");
        assert_eq!(got.token.as_ref().unwrap().expose(), "tok-web-1-s3cret");

        let dup = a
            .send(InsertPod(plaintty_pod("web-1", &[])))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&dup, StoreError::Conflict(m) if m.contains("web-1")),
            "{dup:?}"
        );

        let mismatched = NewPod {
            provider: ProviderKind::Kubernetes,
            ..plaintty_pod("web-2", &[])
        };
        let err = a.send(InsertPod(mismatched)).await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

        // Switch the pod to Kubernetes, drop its token, keep its tags.
        let k8s = ProviderConfig::Kubernetes(KubernetesTarget {
            server: Some("https://127.0.0.1:6443".into()),
            insecure_skip_tls_verify: true,
            ..Default::default()
        });
        let mut identity = PodIdentity::new("web-5d8f7-00001");
        identity.namespace = Some("prod".into());
        let updated = a
            .send(UpdatePod {
                alias: "web-1".into(),
                changes: PodChanges {
                    provider: Some(ProviderKind::Kubernetes),
                    config: Some(k8s.clone()),
                    identity: Some(identity.clone()),
                    token: Some(None),
                    client_key: Some(Some(Secret::new("key-PEM"))),
                    tags: None,
                },
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.provider, ProviderKind::Kubernetes);
        assert_eq!(updated.config, k8s);
        assert_eq!(updated.identity, identity);
        assert_eq!(updated.token, None);
        assert_eq!(
            updated.client_key.as_ref().map(Secret::expose),
            Some("key-PEM")
        );
        assert_eq!(updated.tags, ["eu", "web"]);
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at >= created.updated_at);
        let reread = a
            .send(GetPod {
                alias: "web-1".into(),
            })
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reread, updated);

        let err = a
            .send(UpdatePod {
                alias: "web-1".into(),
                changes: PodChanges {
                    provider: Some(ProviderKind::PlainTty),
                    ..Default::default()
                },
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "provider without matching config: {err:?}"
        );

        let err = a
            .send(UpdatePod {
                alias: "nope".into(),
                changes: PodChanges::default(),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");

        a.send(InsertPod(plaintty_pod("api-1", &[])))
            .await
            .unwrap()
            .unwrap();
        let all = a.send(ListPods).await.unwrap().unwrap();
        let aliases: Vec<_> = all.iter().map(|p| p.alias.as_str()).collect();
        assert_eq!(aliases, ["api-1", "web-1"]);

        a.send(DeletePod {
            alias: "web-1".into(),
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            a.send(GetPod {
                alias: "web-1".into()
            })
            .await
            .unwrap()
            .unwrap()
            .is_none()
        );
        let err = a
            .send(DeletePod {
                alias: "web-1".into(),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        // The alias is free again.
        a.send(InsertPod(plaintty_pod("web-1", &[])))
            .await
            .unwrap()
            .unwrap();
        a.send(Ping).await.unwrap().unwrap();
    });
}

fn tags_filter_pods(db: TestDb) {
    with_store(db.url(), |h| async move {
        let a = h.addr.clone();
        for (alias, tags) in [
            ("a", &["web", "eu"][..]),
            ("b", &["web", "us"][..]),
            ("c", &["db"][..]),
            ("d", &[][..]),
        ] {
            a.send(InsertPod(plaintty_pod(alias, tags)))
                .await
                .unwrap()
                .unwrap();
        }
        let by_tag = |tag: &str| {
            let a = a.clone();
            let tag = tag.to_owned();
            async move {
                a.send(ListPodsByTag { tag })
                    .await
                    .unwrap()
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.alias, p.tags))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            by_tag("web").await,
            [
                ("a".to_owned(), vec!["eu".to_owned(), "web".to_owned()]),
                ("b".to_owned(), vec!["us".to_owned(), "web".to_owned()]),
            ],
            "pods with the tag, each with all its tags"
        );
        assert!(by_tag("nope").await.is_empty());

        a.send(UpdatePod {
            alias: "c".into(),
            changes: PodChanges {
                tags: Some(vec!["web".into(), "web".into()]),
                ..Default::default()
            },
        })
        .await
        .unwrap()
        .unwrap();
        let web: Vec<_> = by_tag("web").await.into_iter().map(|(a, _)| a).collect();
        assert_eq!(web, ["a", "b", "c"]);
        assert!(by_tag("db").await.is_empty(), "old tags are replaced");

        a.send(DeletePod { alias: "a".into() })
            .await
            .unwrap()
            .unwrap();
        let web: Vec<_> = by_tag("web").await.into_iter().map(|(a, _)| a).collect();
        assert_eq!(web, ["b", "c"], "a removed pod leaves no tags behind");
        let all = a.send(ListPods).await.unwrap().unwrap();
        let d = all.iter().find(|p| p.alias == "d").unwrap();
        assert!(d.tags.is_empty());
    });
}

fn command_start_and_finish(db: TestDb) {
    with_store(db.url(), |h| async move {
        let a = h.addr.clone();
        let id = a
            .send(StartCommand {
                alias: "web-1".into(),
                pod_label: "default/web-5d8f7-00000".into(),
                command: "echo 'hi' && exit 3".into(),
                started_at: at(0),
                actor: "unix:1000(alice)".into(),
                job_id: None,
            })
            .await
            .unwrap()
            .unwrap();
        let running = a
            .send(GetCommand { id })
            .await
            .unwrap()
            .unwrap()
            .expect("row written at start");
        assert_eq!(running.status, CommandStatus::Running);
        assert_eq!(running.started_at, at(0));
        assert_eq!(running.finished_at, None);

        let finish = |id: i64, status: CommandStatus| FinishCommand {
            id,
            status,
            exit_code: Some(3),
            stdout: "hi\nünïcödé ✓\n".into(),
            stderr: "warn\n".into(),
            error: None,
            truncated: true,
            finished_at: at(2),
            duration_ms: 2000.5,
            session_restarted: true,
        };
        let done = a
            .send(finish(id, CommandStatus::Failed))
            .await
            .unwrap()
            .unwrap();
        let expected = CommandRecord {
            id,
            alias: "web-1".into(),
            pod_label: "default/web-5d8f7-00000".into(),
            command: "echo 'hi' && exit 3".into(),
            status: CommandStatus::Failed,
            exit_code: Some(3),
            stdout: "hi\nünïcödé ✓\n".into(),
            stderr: "warn\n".into(),
            error: None,
            truncated: true,
            started_at: at(0),
            finished_at: Some(at(2)),
            duration_ms: Some(2000.5),
            actor: Some("unix:1000(alice)".into()),
            session_restarted: true,
            history_error: None,
            job_id: None,
        };
        assert_eq!(done, expected);
        assert_eq!(
            a.send(GetCommand { id }).await.unwrap().unwrap(),
            Some(expected)
        );

        let again = a
            .send(finish(id, CommandStatus::Succeeded))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        let unknown = a
            .send(finish(id + 1000, CommandStatus::Failed))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(unknown, StoreError::NotFound), "{unknown:?}");
        let as_running = a
            .send(finish(id, CommandStatus::Running))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(as_running, StoreError::Invalid(_)),
            "{as_running:?}"
        );
        assert_eq!(
            a.send(GetCommand { id: id + 1000 }).await.unwrap().unwrap(),
            None
        );
    });
}

/// Writes finished rows: aliases alternate a, b, c; every third fails; started one minute apart.
fn seed_history(url: &str, n: usize) -> Vec<CommandRecord> {
    let (mut s, _) = Store::open(url).unwrap();
    let rows: Vec<CommandRecord> = (0..n)
        .map(|i| {
            let alias = ["a", "b", "c"][i % 3];
            let failed = i % 3 == 1 && i % 2 == 0;
            CommandRecord {
                id: 0,
                alias: alias.into(),
                pod_label: format!("default/{alias}"),
                command: format!("echo {i}"),
                status: if failed {
                    CommandStatus::Failed
                } else {
                    CommandStatus::Succeeded
                },
                exit_code: Some(if failed { 1 } else { 0 }),
                stdout: format!("{i}\n"),
                stderr: String::new(),
                error: None,
                truncated: false,
                started_at: at(60 * i as i64),
                finished_at: Some(at(60 * i as i64 + 1)),
                duration_ms: Some(1000.0),
                session_restarted: i == 7,
                actor: Some(
                    if i % 5 == 0 {
                        "key:ci"
                    } else {
                        "unix:1000(alice)"
                    }
                    .into(),
                ),
                history_error: None,
                job_id: None,
            }
        })
        .collect();
    assert_eq!(s.insert_history(&rows).unwrap(), n);
    rows
}

fn history_filters(db: TestDb) {
    seed_history(db.url(), 30);
    with_store(db.url(), |h| async move {
        let page = |f: HistoryFilter| {
            let a = h.addr.clone();
            async move { a.send(ListCommands(f)).await.unwrap().unwrap() }
        };

        let all = page(HistoryFilter::default()).await;
        assert_eq!(all.items.len(), 30);
        assert_eq!(all.next_cursor, None);
        assert!(
            all.items.windows(2).all(|w| w[0].id > w[1].id),
            "newest first"
        );
        assert_eq!(all.items[0].command, "echo 29");

        let b = page(HistoryFilter {
            alias: Some("b".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(b.items.len(), 10);
        assert!(b.items.iter().all(|r| r.alias == "b"));

        let ci = page(HistoryFilter {
            actor: Some("key:ci".into()),
            ..Default::default()
        })
        .await;
        let cmds: Vec<_> = ci.items.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(
            cmds,
            [
                "echo 25", "echo 20", "echo 15", "echo 10", "echo 5", "echo 0"
            ]
        );

        let failed = page(HistoryFilter {
            status: Some(CommandStatus::Failed),
            ..Default::default()
        })
        .await;
        let cmds: Vec<_> = failed.items.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(cmds, ["echo 28", "echo 22", "echo 16", "echo 10", "echo 4"]);

        // Started at or after minute 25: rows 25..29.
        let since = page(HistoryFilter {
            since: Some(at(60 * 25)),
            ..Default::default()
        })
        .await;
        let cmds: Vec<_> = since.items.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(
            cmds,
            ["echo 29", "echo 28", "echo 27", "echo 26", "echo 25"]
        );

        let combined = page(HistoryFilter {
            alias: Some("b".into()),
            status: Some(CommandStatus::Succeeded),
            since: Some(at(60 * 10) - Duration::seconds(1)),
            ..Default::default()
        })
        .await;
        let cmds: Vec<_> = combined.items.iter().map(|r| r.command.as_str()).collect();
        assert_eq!(cmds, ["echo 25", "echo 19", "echo 13"]);

        let none = page(HistoryFilter {
            alias: Some("zzz".into()),
            ..Default::default()
        })
        .await;
        assert!(none.items.is_empty() && none.next_cursor.is_none());

        let bad = h
            .addr
            .send(ListCommands(HistoryFilter {
                cursor: Some("not-a-cursor".into()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(bad, StoreError::Invalid(_)), "{bad:?}");
    });
}

fn cursor_paging_visits_every_row_once(db: TestDb) {
    let rows = seed_history(db.url(), 1_234);
    with_store(db.url(), |h| async move {
        let walk = |filter: HistoryFilter| {
            let a = h.addr.clone();
            async move {
                let mut seen = Vec::new();
                let mut pages = 0;
                let mut cursor = None;
                loop {
                    let page = a
                        .send(ListCommands(HistoryFilter {
                            cursor: cursor.take(),
                            ..filter.clone()
                        }))
                        .await
                        .unwrap()
                        .unwrap();
                    pages += 1;
                    assert!(page.items.len() <= filter.effective_limit());
                    seen.extend(page.items.iter().map(|r| r.id));
                    match page.next_cursor {
                        Some(c) => {
                            assert_eq!(page.items.len(), filter.effective_limit());
                            cursor = Some(c);
                        }
                        None => break,
                    }
                    assert!(pages < 10_000, "paging does not end");
                }
                (seen, pages)
            }
        };

        let (ids, pages) = walk(HistoryFilter {
            limit: 100,
            ..Default::default()
        })
        .await;
        assert_eq!(ids.len(), rows.len());
        assert_eq!(pages, 13, "12 full pages and one of 34");
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "strictly newest first across pages"
        );
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), rows.len());

        let (c_ids, _) = walk(HistoryFilter {
            alias: Some("c".into()),
            limit: 7,
            ..Default::default()
        })
        .await;
        assert_eq!(c_ids.len(), rows.len() / 3);
        assert!(c_ids.windows(2).all(|w| w[0] > w[1]));

        // Exactly one full page: no cursor pointing at an empty page.
        let (a_ids, a_pages) = walk(HistoryFilter {
            alias: Some("a".into()),
            limit: 412,
            ..Default::default()
        })
        .await;
        assert_eq!((a_ids.len(), a_pages), (412, 1));

        let page = |limit| {
            let a = h.addr.clone();
            async move {
                a.send(ListCommands(HistoryFilter {
                    limit,
                    ..Default::default()
                }))
                .await
                .unwrap()
                .unwrap()
                .items
                .len()
            }
        };
        assert_eq!(page(0).await, HistoryFilter::DEFAULT_LIMIT);
        assert_eq!(page(5_000).await, HistoryFilter::MAX_LIMIT);
    });
}

fn running_rows_become_interrupted_at_start(db: TestDb) {
    let url = db.url().to_owned();
    let start = |alias: &str| StartCommand {
        alias: alias.into(),
        pod_label: alias.into(),
        command: "sleep 100".into(),
        started_at: at(0),
        actor: "key:ci".into(),
        job_id: None,
    };
    let (crashed, shutdown, finished) = with_store(&url, |h| async move {
        assert_eq!(h.interrupted_at_start, 0);
        let a = h.addr;
        let crashed = a.send(start("x")).await.unwrap().unwrap();
        let shutdown = a.send(start("y")).await.unwrap().unwrap();
        let finished = a.send(start("z")).await.unwrap().unwrap();
        a.send(start("w")).await.unwrap().unwrap();
        a.send(succeeded(finished, String::new(), at(1), 1000.0))
            .await
            .unwrap()
            .unwrap();
        // A graceful shutdown interrupts only what it names; x and w play crash victims.
        let n = a
            .send(InterruptRunning {
                ids: Some(vec![shutdown, finished, 999_999]),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "only the running row among the ids changes");
        (crashed, shutdown, finished)
    });

    // The daemon "crashed": a new store on the same database marks what was left running.
    with_store(&url, |h| async move {
        assert_eq!(h.interrupted_at_start, 2, "x and w were left running");
        let a = h.addr;
        let get = |id| {
            let a = a.clone();
            async move { a.send(GetCommand { id }).await.unwrap().unwrap().unwrap() }
        };
        for id in [crashed, shutdown] {
            let r = get(id).await;
            assert_eq!(r.status, CommandStatus::Interrupted, "{r:?}");
            assert_eq!(r.error.as_deref(), Some(store::INTERRUPTED_ERROR));
        }
        assert_eq!(get(finished).await.status, CommandStatus::Succeeded);
        let running = a
            .send(ListCommands(HistoryFilter {
                status: Some(CommandStatus::Running),
                ..Default::default()
            }))
            .await
            .unwrap()
            .unwrap();
        assert!(running.items.is_empty());

        // A command that outlives the shutdown mark still records its real outcome.
        let late = a
            .send(FinishCommand {
                id: shutdown,
                status: CommandStatus::Failed,
                exit_code: Some(2),
                stdout: String::new(),
                stderr: "late".into(),
                error: None,
                truncated: false,
                finished_at: at(5),
                duration_ms: 5000.0,
                session_restarted: false,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(late.status, CommandStatus::Failed);
        assert_eq!(late.error, None);

        let none_left = a
            .send(InterruptRunning { ids: None })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(none_left, 0);
    });
}

fn concurrent_writers_do_not_fail(db: TestDb) {
    with_store(db.url(), |h| async move {
        // 200 commands started and finished at once over 3 actors: SQLite must wait for its
        // write lock (busy_timeout, BEGIN IMMEDIATE) rather than fail with "database is locked".
        let tasks = (0..200).map(|i| {
            let a = h.addr.clone();
            async move {
                let id = a
                    .send(StartCommand {
                        alias: format!("p{}", i % 10),
                        pod_label: "l".into(),
                        command: format!("echo {i}"),
                        started_at: Utc::now(),
                        actor: "key:ci".into(),
                        job_id: None,
                    })
                    .await
                    .unwrap()?;
                a.send(succeeded(id, format!("{i}\n"), Utc::now(), 0.1))
                    .await
                    .unwrap()
            }
        });
        let results = futures_util::future::join_all(tasks).await;
        let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failures.is_empty(), "{failures:?}");
        let page = h
            .addr
            .send(ListCommands(HistoryFilter {
                limit: 1000,
                status: Some(CommandStatus::Succeeded),
                ..Default::default()
            }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page.items.len(), 200);
    });
}

/// Pod set definitions, and history kept by set and pod name after the set is gone (the
/// `pod_sets` migration on each backend, after the jobs migration rebuilt `commands`).
fn pod_sets_and_their_history(db: TestDb) {
    with_store(db.url(), |h| async move {
        let a = h.addr.clone();
        let row = |name: &str| PodSetRow {
            name: name.into(),
            cluster: "prod".into(),
            namespace: "shop".into(),
            selector: "app=web,tier in (front)".into(),
            container: Some("app".into()),
            created_at: at(0).naive_utc(),
            actor: "unix:1000(alice)".into(),
        };
        a.send(InsertSet(row("web"))).await.unwrap().unwrap();
        a.send(InsertSet(row("api"))).await.unwrap().unwrap();
        let taken = a.send(InsertSet(row("web"))).await.unwrap().unwrap_err();
        assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
        let sets = a.send(ListSets).await.unwrap().unwrap();
        assert_eq!(sets, vec![row("api"), row("web")]);

        for (i, alias) in [
            "web/web-7c9d-a1",
            "web-7c9d-a1",
            "api/web-7c9d-a1",
            "web/web-7c9d-b2",
        ]
        .into_iter()
        .enumerate()
        {
            let id = a
                .send(StartCommand {
                    alias: alias.into(),
                    pod_label: "shop/web-7c9d-a1".into(),
                    command: format!("echo {i}"),
                    started_at: at(i as i64),
                    actor: "unix:1000(alice)".into(),
                    job_id: None,
                })
                .await
                .unwrap()
                .unwrap();
            a.send(succeeded(id, format!("{i}\n"), at(i as i64 + 1), 1.0))
                .await
                .unwrap()
                .unwrap();
        }
        a.send(DeleteSet("web".into())).await.unwrap().unwrap();
        let gone = a.send(DeleteSet("web".into())).await.unwrap().unwrap_err();
        assert!(matches!(gone, StoreError::NotFound), "{gone:?}");
        assert_eq!(a.send(ListSets).await.unwrap().unwrap(), vec![row("api")]);

        // The set's history outlives the set, and only its members' rows are in it.
        let web = a
            .send(ListCommands(HistoryFilter {
                set: Some("web".into()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .unwrap();
        let aliases: Vec<&str> = web.items.iter().map(|r| r.alias.as_str()).collect();
        assert_eq!(aliases, ["web/web-7c9d-b2", "web/web-7c9d-a1"]);
        let api = a
            .send(ListCommands(HistoryFilter {
                set: Some("api".into()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(api.items.len(), 1);
        assert_eq!(api.items[0].command, "echo 2");
    });
}
