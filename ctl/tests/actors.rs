//! Who asked: the daemon records the caller of every command and registration (`unix:UID(NAME)`
//! over the socket); `exec history --actor`, `exec show` and `pwctl audit` show it.

mod common;

use common::Stack;
use podwrangler::api::{AuditAction, AuditPage, CommandPage};

/// `unix:UID(` for the user running the tests; the name in brackets comes from the passwd
/// database, which a container may lack.
fn own_actor_prefix() -> String {
    // SAFETY: geteuid has no preconditions.
    format!("unix:{}(", unsafe { libc::geteuid() })
}

#[test]
fn history_filters_by_actor_and_shows_it() {
    let s = Stack::start(1);
    s.add_all();
    s.run(&["exec", "run", "web-0", "echo one"]).ok();
    s.run(&["exec", "run", "web-0", "echo two"]).ok();

    let all: CommandPage =
        serde_json::from_str(&s.run(&["exec", "history", "--json"]).stdout).expect("CommandPage");
    assert_eq!(all.items.len(), 2, "{all:?}");
    let actor = all.items[0]
        .actor
        .clone()
        .expect("the daemon records the actor");
    assert!(
        actor.starts_with(&own_actor_prefix()) && actor.ends_with(')'),
        "{actor}"
    );

    let mine: CommandPage = serde_json::from_str(
        &s.run(&["exec", "history", "--actor", &actor, "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(mine.items.len(), 2);
    assert!(
        mine.items
            .iter()
            .all(|r| r.actor.as_deref() == Some(&actor))
    );

    let text = s.run(&["exec", "history", "--actor", &actor]);
    text.ok();
    let header = text.stdout.lines().next().unwrap_or_default();
    assert!(header.contains("ACTOR"), "{}", text.stdout);
    assert_eq!(
        text.stdout.lines().filter(|l| l.contains(&actor)).count(),
        2,
        "{}",
        text.stdout
    );

    let nobody = s.run(&["exec", "history", "--actor", "nobody"]);
    nobody.ok();
    assert_eq!(nobody.stdout, "");
    assert!(
        nobody.stderr.contains("no commands in the history match"),
        "{}",
        nobody.stderr
    );
    let none: CommandPage = serde_json::from_str(
        &s.run(&["exec", "history", "--actor", "nobody", "--json"])
            .stdout,
    )
    .unwrap();
    assert!(none.items.is_empty(), "{none:?}");

    let show = s.run(&["exec", "show", &all.items[0].id.to_string()]);
    show.ok();
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("actor:") && l.contains(&actor)),
        "{}",
        show.stdout
    );
}

#[test]
fn audit_lists_registrations_and_removals_newest_first() {
    let s = Stack::start(2);
    s.add_all();
    s.run(&["pod", "remove", "web-1"]).ok();

    let page: AuditPage =
        serde_json::from_str(&s.run(&["audit", "--json"]).stdout).expect("AuditPage");
    let events: Vec<(AuditAction, &str)> = page
        .items
        .iter()
        .map(|e| (e.action, e.subject.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            (AuditAction::PodRemoved, "web-1"),
            (AuditAction::PodRegistered, "web-1"),
            (AuditAction::PodRegistered, "web-0"),
        ]
    );
    let actor = page.items[0].actor.clone();
    assert!(actor.starts_with(&own_actor_prefix()), "{actor}");
    assert!(
        page.items.iter().all(|e| e.actor == actor),
        "{:?}",
        page.items
    );

    let text = s.run(&["audit"]);
    text.ok();
    let mut lines = text.stdout.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["TIME", "ACTOR", "ACTION", "SUBJECT", "DETAIL"] {
        assert!(header.contains(column), "{header}");
    }
    let first = lines.next().unwrap_or_default();
    assert!(
        first.contains("pod_removed") && first.contains("web-1") && first.contains(&actor),
        "{}",
        text.stdout
    );
    // The sim token in the PlainTTY URLs never reaches the audit trail.
    assert!(!text.stdout.contains("sim-token"), "{}", text.stdout);

    let limited: AuditPage =
        serde_json::from_str(&s.run(&["audit", "--limit", "1", "--json"]).stdout).unwrap();
    assert_eq!(limited.items.len(), 1);
    let cursor = limited.next_cursor.expect("a cursor to the next page");
    let next: AuditPage = serde_json::from_str(
        &s.run(&["audit", "--limit", "1", "--cursor", &cursor, "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(next.items.len(), 1);
    assert_eq!(next.items[0].action, AuditAction::PodRegistered);

    let mine: AuditPage =
        serde_json::from_str(&s.run(&["audit", "--actor", &actor, "--json"]).stdout).unwrap();
    assert_eq!(mine.items.len(), 3);
    let nobody = s.run(&["audit", "--actor", "nobody"]);
    nobody.ok();
    assert_eq!(nobody.stdout, "");
    assert!(
        nobody.stderr.contains("no audit events match"),
        "{}",
        nobody.stderr
    );
    s.run(&["audit", "--limit", "0"]).expect_code(65);
}
