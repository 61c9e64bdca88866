//! `pwctl audit`: who registered, changed, imported and removed pods (`GET /api/v1/audit`).

use podwrangler::api::{API_PREFIX, AuditPage};

use crate::cli::AuditCmd;
use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::output::{self, print_json, print_rows};

pub fn list(client: &Client, cmd: &AuditCmd, json: bool) -> Result<i32, CtlError> {
    if cmd.limit == 0 {
        return Err(CtlError::BadInput("--limit must be at least 1".into()));
    }
    let mut query: Vec<(&str, String)> = vec![("limit", cmd.limit.to_string())];
    if let Some(actor) = &cmd.actor {
        query.push(("actor", actor.clone()));
    }
    if let Some(cursor) = &cmd.cursor {
        query.push(("cursor", cursor.clone()));
    }
    let page: AuditPage = client.get(&format!("{API_PREFIX}/audit"), &query)?;
    if json {
        print_json(&page);
        return Ok(exit::OK);
    }
    if page.items.is_empty() {
        eprintln!("no audit events match");
        return Ok(exit::OK);
    }
    // Actor, subject and detail come from callers (key names, pod names): cleaned before they
    // reach the terminal.
    let rows = page
        .items
        .iter()
        .map(|e| {
            vec![
                output::short_time(&e.at),
                output::clean_line(&e.actor),
                e.action.as_str().to_string(),
                output::clean_line(&e.subject),
                output::first_line(&e.detail),
            ]
        })
        .collect();
    print_rows(&["TIME", "ACTOR", "ACTION", "SUBJECT", "DETAIL"], rows);
    if let Some(cursor) = &page.next_cursor {
        eprintln!(
            "{}",
            output::dim(&format!(
                "more: pwctl audit --cursor {cursor} (with the same filters)"
            ))
        );
    }
    Ok(exit::OK)
}
