//! `pwctl set ...`: pod sets, whose Ready pods the daemon keeps registered as `SET/POD` while
//! the cluster rolls them (`/api/v1/sets`).

use podwrangler::api::{API_PREFIX, PodSetCreate, PodSetDetail, PodSetInfo};

use crate::cli::{SetAdd, SetDelete, SetShow};
use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::output::{self, print_json, print_rows};
use crate::pods::{encode_segment, state_text};

fn set_path(name: &str) -> String {
    format!("{API_PREFIX}/sets/{}", encode_segment(name))
}

fn watch_text(info: &PodSetInfo) -> String {
    match info.watch.as_str() {
        "watching" => output::good("watching"),
        "failing" => output::bad("failing"),
        other => output::warn(other),
    }
}

pub fn add(client: &Client, cmd: &SetAdd, json: bool) -> Result<i32, CtlError> {
    let body = PodSetCreate {
        name: cmd.name.clone(),
        cluster: cmd.cluster.clone(),
        namespace: cmd.namespace.clone(),
        selector: cmd.selector.clone(),
        container: cmd.container.clone(),
    };
    let info: PodSetInfo = client.send("POST", &format!("{API_PREFIX}/sets"), &body, None)?;
    if json {
        print_json(&info);
    } else {
        println!(
            "pod set {} follows {} in {}/{} (members: {}/POD)",
            output::strong(&info.name),
            info.selector,
            info.cluster,
            info.namespace,
            info.name
        );
    }
    Ok(exit::OK)
}

pub fn list(client: &Client, json: bool) -> Result<i32, CtlError> {
    let sets: Vec<PodSetInfo> = client.get(&format!("{API_PREFIX}/sets"), &[])?;
    if json {
        print_json(&sets);
        return Ok(exit::OK);
    }
    let rows = sets
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.cluster.clone(),
                s.namespace.clone(),
                s.selector.clone(),
                s.members.to_string(),
                watch_text(s),
            ]
        })
        .collect();
    print_rows(
        &[
            "NAME",
            "CLUSTER",
            "NAMESPACE",
            "SELECTOR",
            "MEMBERS",
            "WATCH",
        ],
        rows,
    );
    Ok(exit::OK)
}

pub fn show(client: &Client, cmd: &SetShow, json: bool) -> Result<i32, CtlError> {
    let detail: PodSetDetail = client.get(&set_path(&cmd.name), &[])?;
    if json {
        print_json(&detail);
        return Ok(exit::OK);
    }
    let s = &detail.set;
    let row = |k: &str, v: &str| println!("{:<10} {v}", output::dim(&format!("{k}:")));
    println!("{}", output::strong(&s.name));
    row("cluster", &s.cluster);
    row("namespace", &s.namespace);
    row("selector", &s.selector);
    if let Some(c) = &s.container {
        row("container", c);
    }
    row("watch", &watch_text(s));
    if let Some(e) = &s.error {
        row("error", e);
    }
    row(
        "created",
        &format!("{} by {}", s.created_at.to_rfc3339(), s.actor),
    );
    println!();
    let rows = detail
        .pods
        .iter()
        .map(|m| vec![m.alias.clone(), state_text(&m.state)])
        .collect();
    print_rows(&["ALIAS", "STATE"], rows);
    Ok(exit::OK)
}

pub fn delete(client: &Client, cmd: &SetDelete, json: bool) -> Result<i32, CtlError> {
    client.delete(&set_path(&cmd.name))?;
    if json {
        print_json(&serde_json::json!({"deleted": cmd.name}));
    } else {
        println!(
            "deleted pod set {} (its members are retired; history stays)",
            output::strong(&cmd.name)
        );
    }
    Ok(exit::OK)
}
