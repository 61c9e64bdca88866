//! `pwctl exec ...`: run a command in one pod or many, and read the history.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use podwrangler::api::{
    API_PREFIX, CommandPage, CommandRecord, CommandStatus, ExecEvent, ExecRequest, FanOutRequest,
    FanOutResponse, JobPage, JobSummary,
};

use crate::cli::{ExecHistory, ExecJob, ExecJobs, ExecRun, ExecRunMany, ExecShow};
use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::fanout;
use crate::output::{self, print_json, print_rows};
use crate::pods::{pod_not_found, pod_path};

fn command_text(words: &[String], what: &str) -> Result<String, CtlError> {
    let text = words.join(" ");
    if text.trim().is_empty() {
        return Err(CtlError::Usage(format!(
            "give the command to run: {what} (words after `--` are taken as they are)"
        )));
    }
    Ok(text)
}

fn check_timeout(timeout: Option<f64>) -> Result<(), CtlError> {
    match timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => Err(CtlError::BadInput(format!(
            "--timeout must be a positive number of seconds, not {t}"
        ))),
        _ => Ok(()),
    }
}

/// A remote exit code as this process's exit code: 1..=255 pass through, anything outside
/// (a signal's negative code, a wrapped value) becomes 1 so it never reads as success.
pub fn passthrough(code: i32) -> i32 {
    match code {
        0..=255 => code,
        _ => exit::FAILURE,
    }
}

fn write_streams(record: &CommandRecord) {
    // Raw bytes as the pod wrote them: `pwctl exec run pod cat file > copy` must copy.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(record.stdout.as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(record.stderr.as_bytes());
    let _ = err.flush();
}

/// `exec run --file` and `--stdin`: the body of the request is the script or the stdin,
/// streamed from the file or this process's stdin.
fn run_with_input(client: &Client, cmd: &ExecRun, json: bool) -> Result<i32, CtlError> {
    check_timeout(cmd.timeout)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(t) = cmd.timeout {
        query.push(("timeout", t.to_string()));
    }
    let mut reader: Box<dyn std::io::Read> = match (&cmd.file, cmd.stdin) {
        (Some(_), true) => {
            return Err(CtlError::Usage(
                "--file and --stdin cannot be combined (the script would be the command's stdin)"
                    .into(),
            ));
        }
        (Some(file), false) => {
            if !cmd.command.is_empty() {
                return Err(CtlError::Usage(
                    "give either a command or --file, not both".into(),
                ));
            }
            if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(file).map_err(|e| {
                    CtlError::BadInput(format!("cannot read {}: {e}", file.display()))
                })?)
            }
        }
        (None, _) => {
            let command = command_text(&cmd.command, "pwctl exec run ALIAS --stdin COMMAND")?;
            query.push(("command", command));
            Box::new(std::io::stdin().lock())
        }
    };
    let path = format!(
        "{}/exec/{}",
        pod_path(&cmd.alias),
        if cmd.file.is_some() {
            "script"
        } else {
            "stdin"
        }
    );
    if json {
        let record: CommandRecord = client
            .send_raw("POST", &path, &query, &mut reader)
            .map_err(pod_not_found(&cmd.alias))?;
        print_json(&record);
        return Ok(record_exit(&record, true));
    }
    run_live(client, &cmd.alias, |on_item, on_whole| {
        client.post_raw_stream(&path, &query, &mut reader, on_item, on_whole)
    })
}

/// How `run_live` sends its request: it hands over what to do with each streamed event and
/// with a whole record.
type Sender<'a> = dyn FnMut(ExecEvent) + 'a;
type WholeSender<'a> = dyn FnMut(CommandRecord) + 'a;

pub fn run(client: &Client, cmd: &ExecRun, json: bool) -> Result<i32, CtlError> {
    if cmd.file.is_some() || cmd.stdin {
        return run_with_input(client, cmd, json);
    }
    let command = command_text(&cmd.command, "pwctl exec run ALIAS COMMAND")?;
    check_timeout(cmd.timeout)?;
    let body = ExecRequest {
        command,
        timeout: cmd.timeout,
        check: false,
    };
    let path = format!("{}/exec", pod_path(&cmd.alias));
    if !json {
        return run_live(client, &cmd.alias, |on_item, on_whole| {
            client.post_stream(&path, &body, on_item, on_whole)
        });
    }
    let record: CommandRecord = match client.send("POST", &path, &body, None) {
        Ok(r) => r,
        Err(CtlError::Api(p)) if p.code == "command_timeout" && p.record.is_some() => {
            let record = *p.record.expect("checked above");
            if json {
                print_json(&record);
            } else {
                write_streams(&record);
                // Partial output rarely ends a line; start the message on a fresh one.
                if !record.stdout.is_empty()
                    && !record.stdout.ends_with('\n')
                    && std::io::stdout().is_terminal()
                {
                    eprintln!();
                }
                output::error_line(&format!(
                    "{} (the output above is what it printed before)",
                    p.detail
                ));
            }
            return Ok(exit::TIMEOUT);
        }
        Err(e) => return Err(pod_not_found(&cmd.alias)(e)),
    };
    if json {
        print_json(&record);
    } else {
        write_streams(&record);
    }
    Ok(record_exit(&record, json))
}

/// `exec run` without `--json`: output is printed as it arrives; Ctrl-C cancels the command in
/// the pod (its shell is kept) and exits 130.
fn run_live(
    client: &Client,
    alias: &str,
    send: impl FnOnce(&mut Sender<'_>, &mut WholeSender<'_>) -> Result<(), CtlError>,
) -> Result<i32, CtlError> {
    use std::sync::{Arc, Mutex};
    let running: Arc<Mutex<Option<i64>>> = Arc::default();
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (running, cancelled, client) = (running.clone(), cancelled.clone(), client.clone());
        // A second Ctrl-C while cancelling leaves at once.
        let _ = ctrlc::set_handler(move || {
            if cancelled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::process::exit(exit::CANCELLED);
            }
            match *running.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(id) => {
                    let path = format!("/api/v1/commands/{id}/cancel");
                    let _ = client.send::<_, serde_json::Value>("POST", &path, &(), None);
                }
                None => std::process::exit(exit::CANCELLED),
            }
        });
    }
    let mut finished: Option<CommandRecord> = None;
    let whole: Mutex<Option<CommandRecord>> = Mutex::new(None);
    let mut problem: Option<podwrangler::api::Problem> = None;
    // Only the last byte printed matters (did the output end a line?): keeping all of it
    // would hold a whole streamed output in memory.
    let mut last_stdout_byte: Option<u8> = None;
    let result = send(
        &mut |event| match event {
            ExecEvent::Started { id, .. } => {
                *running.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
            }
            ExecEvent::Stdout { data, .. } => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(data.as_bytes());
                let _ = out.flush();
                if let Some(&b) = data.as_bytes().last() {
                    last_stdout_byte = Some(b);
                }
            }
            ExecEvent::Stderr { data, .. } => {
                let _ = std::io::stderr().lock().write_all(data.as_bytes());
            }
            ExecEvent::Finished { record } => finished = Some(*record),
            ExecEvent::Error { problem: p } => problem = Some(*p),
            // Fan-out events; a single exec has none.
            ExecEvent::Job { .. } | ExecEvent::JobFinished { .. } => {}
        },
        // An older daemon answers the whole record at once.
        &mut |record: CommandRecord| {
            write_streams(&record);
            *whole.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
        },
    );
    result.map_err(pod_not_found(alias))?;
    if let Some(record) = whole.lock().unwrap_or_else(|e| e.into_inner()).take() {
        finished = Some(record);
    }
    if let Some(p) = problem {
        if let Some(record) = p.record.as_deref()
            && p.code == "command_timeout"
        {
            if !record.stdout.is_empty()
                && !record.stdout.ends_with('\n')
                && std::io::stdout().is_terminal()
            {
                eprintln!();
            }
            output::error_line(&format!(
                "{} (the output above is what it printed before)",
                p.detail
            ));
            return Ok(exit::TIMEOUT);
        }
        return Err(pod_not_found(alias)(CtlError::Api(Box::new(p))));
    }
    let record = finished.ok_or_else(|| CtlError::Transport {
        target: client.endpoint().to_string(),
        message: "the result stream ended without the command's record".into(),
    })?;
    if record.status == CommandStatus::Cancelled {
        if last_stdout_byte.is_some_and(|b| b != b'\n') {
            eprintln!();
        }
        output::error_line(&format!(
            "cancelled command {} in {}; its shell is kept",
            record.id, record.alias
        ));
        return Ok(exit::CANCELLED);
    }
    Ok(record_exit(&record, false))
}

fn record_exit(record: &CommandRecord, quiet: bool) -> i32 {
    match (record.status, record.exit_code) {
        (CommandStatus::Succeeded | CommandStatus::Failed, Some(code)) => passthrough(code),
        (CommandStatus::Timeout, _) => exit::TIMEOUT,
        (status, _) => {
            if !quiet {
                let why = record.error.as_deref().unwrap_or("no exit code came back");
                output::error_line(&format!(
                    "the command did not finish in {} ({}): {why}",
                    record.alias,
                    status.as_str()
                ));
            }
            exit::FAILURE
        }
    }
}

fn split_aliases(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        // Draws only when stderr is a terminal; in a pipe it stays silent.
        ProgressDrawTarget::stderr(),
    );
    let style =
        ProgressStyle::with_template("{spinner} {elapsed:>4} [{wide_bar}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn status_word(r: &CommandRecord) -> String {
    match (r.status, r.exit_code) {
        (CommandStatus::Succeeded | CommandStatus::Failed, Some(code)) => code.to_string(),
        (status, _) => status.as_str().to_string(),
    }
}

fn output_preview(r: &CommandRecord) -> String {
    let line = output::first_line(&r.stdout);
    if !line.is_empty() {
        return line;
    }
    let line = output::first_line(&r.stderr);
    if !line.is_empty() {
        return line;
    }
    r.error
        .as_deref()
        .map(output::first_line)
        .unwrap_or_default()
}

fn fan_out_request(cmd: &ExecRunMany) -> Result<FanOutRequest, CtlError> {
    let rerun = cmd.rerun_failed.is_some();
    let command = if rerun {
        if !cmd.command.is_empty() {
            return Err(CtlError::Usage(
                "--rerun-failed runs the job's own command again; give no command".into(),
            ));
        }
        None
    } else {
        Some(command_text(
            &cmd.command,
            "pwctl exec run-many COMMAND --all",
        )?)
    };
    check_timeout(cmd.timeout)?;
    let chosen = [
        cmd.aliases.is_some(),
        cmd.tag.is_some(),
        cmd.set.is_some(),
        cmd.all,
        rerun,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen != 1 {
        return Err(CtlError::Usage(
            "say which pods: exactly one of --aliases a,b, --tag T, --set S, --all or --rerun-failed JOB"
                .into(),
        ));
    }
    let aliases = cmd.aliases.as_deref().map(split_aliases);
    if aliases.as_ref().is_some_and(Vec::is_empty) {
        return Err(CtlError::Usage("--aliases names no pods".into()));
    }
    if cmd.diff && !cmd.group {
        return Err(CtlError::Usage("--diff goes with --group".into()));
    }
    Ok(FanOutRequest {
        command,
        aliases,
        tag: cmd.tag.clone(),
        set: cmd.set.clone(),
        all: cmd.all,
        timeout: cmd.timeout,
        concurrency: cmd.concurrency,
        batch: cmd.batch.clone(),
        max_failures: cmd.max_failures.clone(),
        canary: cmd.canary,
        pick: cmd.pick,
        rerun_failed: cmd.rerun_failed,
    })
}

pub fn run_many(client: &Client, cmd: &ExecRunMany, json: bool) -> Result<i32, CtlError> {
    let body = fan_out_request(cmd)?;
    let path = format!("{API_PREFIX}/exec");
    let friendly = |e: CtlError| match (&e, &body.aliases) {
        // The daemon names the missing pod in its detail; keep the friendly wording.
        (CtlError::Api(p), Some(list)) if p.code == "pod_not_found" => list
            .iter()
            .find(|a| p.detail.contains(a.as_str()))
            .map(|a| CtlError::no_pod(a))
            .unwrap_or(e),
        _ => e,
    };
    if json {
        let response: FanOutResponse = client.send("POST", &path, &body, None).map_err(friendly)?;
        print_json(&response);
        return Ok(fanout::rollup(
            response.results.iter().map(|r| (r.status, r.exit_code)),
        ));
    }

    let show_progress = !cmd.stream && std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let started = Instant::now();
    let mut records: Vec<CommandRecord> = Vec::new();
    let mut whole: Option<FanOutResponse> = None;
    let mut summary: Option<JobSummary> = None;
    let mut job_id: Option<i64> = None;
    let mut problem: Option<podwrangler::api::Problem> = None;
    let mut failed = 0usize;
    let mut printer = fanout::LinePrinter::new();
    let result = client.post_stream(
        &path,
        &body,
        |event: ExecEvent| match event {
            ExecEvent::Job { id, pods } => {
                // 0: the daemon could not record the job (its database refuses writes).
                job_id = (id > 0).then_some(id);
                if show_progress {
                    bar = Some(progress_bar(pods));
                }
            }
            ExecEvent::Started { .. } => {}
            ExecEvent::Stdout { alias, data } if cmd.stream => printer.chunk(&alias, false, &data),
            ExecEvent::Stderr { alias, data } if cmd.stream => printer.chunk(&alias, true, &data),
            ExecEvent::Stdout { .. } | ExecEvent::Stderr { .. } => {}
            ExecEvent::Finished { record } => {
                if cmd.stream {
                    printer.finish(&record.alias);
                }
                if !matches!(
                    record.status,
                    CommandStatus::Succeeded | CommandStatus::Skipped
                ) {
                    failed += 1;
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(if failed > 0 {
                        format!("{failed} failed")
                    } else {
                        String::new()
                    });
                }
                records.push(*record);
            }
            ExecEvent::JobFinished { summary: s } => summary = Some(*s),
            ExecEvent::Error { problem: p } => problem = Some(*p),
        },
        |w: FanOutResponse| whole = Some(w),
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result.map_err(friendly)?;
    if let Some(p) = problem {
        return Err(CtlError::Api(Box::new(p)));
    }
    let mut response = match whole {
        Some(w) => w,
        None => {
            let count = |s: CommandStatus| records.iter().filter(|r| r.status == s).count();
            let (succeeded, skipped) = (
                count(CommandStatus::Succeeded),
                count(CommandStatus::Skipped),
            );
            FanOutResponse {
                failed: records.len() - succeeded - skipped,
                succeeded,
                skipped,
                results: records,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                job_id,
                stopped: summary.as_ref().and_then(|s| s.job.stopped.clone()),
            }
        }
    };
    response.results.sort_by(|a, b| a.alias.cmp(&b.alias));
    let code = fanout::rollup(response.results.iter().map(|r| (r.status, r.exit_code)));
    if response.results.is_empty() {
        output::error_line("no pods matched, nothing ran");
        return Ok(exit::FAILURE);
    }

    if cmd.group {
        let grouped = podwrangler::groups::group(&response.results);
        fanout::print_groups(&grouped.groups, &grouped.skipped);
        if cmd.diff {
            fanout::print_diffs(&grouped.groups);
        }
    } else if !cmd.stream {
        let rows = response
            .results
            .iter()
            .map(|r| {
                vec![
                    r.alias.clone(),
                    status_word(r),
                    output::duration(r.duration_ms),
                    output_preview(r),
                ]
            })
            .collect();
        print_rows(&["POD", "EXIT", "DURATION", "OUTPUT"], rows);
    }
    let mut line = format!(
        "{} pod{}: {} succeeded, {} failed",
        response.results.len(),
        if response.results.len() == 1 { "" } else { "s" },
        response.succeeded,
        response.failed,
    );
    if response.skipped > 0 {
        line.push_str(&format!(", {} skipped", response.skipped));
    }
    line.push_str(&format!(
        " in {}",
        output::duration(Some(response.duration_ms))
    ));
    if let Some(id) = response.job_id {
        line.push_str(&format!(" (job {id})"));
    }
    let line = if code == exit::OK {
        output::good(&line)
    } else {
        output::bad(&line)
    };
    // With --stream stdout carries the pods' lines; the summary goes beside the errors.
    if cmd.stream {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    if let Some(reason) = &response.stopped {
        output::error_line(&format!("stopped early: {reason}"));
    }

    if cmd.show_output {
        for r in &response.results {
            println!();
            let header = format!(
                "── {} ({}, exit {}, {}) ",
                r.alias,
                r.pod_label,
                status_word(r),
                output::duration(r.duration_ms)
            );
            println!("{}", output::strong(&header));
            print!("{}", r.stdout);
            if !r.stdout.is_empty() && !r.stdout.ends_with('\n') {
                println!();
            }
            if !r.stderr.is_empty() {
                println!("{}", output::dim("stderr:"));
                print!("{}", r.stderr);
                if !r.stderr.ends_with('\n') {
                    println!();
                }
            }
            if let Some(err) = &r.error {
                println!("{} {err}", output::bad("error:"));
            }
            if r.truncated {
                println!("{}", output::warn("(output truncated by the daemon)"));
            }
        }
    }
    Ok(code)
}

/// `pwctl exec job ID`: the job's summary, grouped.
pub fn job(client: &Client, cmd: &ExecJob, json: bool) -> Result<i32, CtlError> {
    let summary: JobSummary = client.get(&format!("{API_PREFIX}/jobs/{}", cmd.id), &[])?;
    if json {
        print_json(&summary);
        return Ok(exit::OK);
    }
    let j = &summary.job;
    let row = |k: &str, v: &str| println!("{:<9} {v}", output::dim(&format!("{k}:")));
    println!("{}", output::strong(&format!("job #{}", j.id)));
    row("command", &j.command);
    row("pods", &format!("{} ({})", j.targets, j.total));
    row("actor", &output::clean_line(&j.actor));
    row("started", &crate::pods::local_time(&j.created_at));
    match &j.finished_at {
        Some(f) => row("finished", &crate::pods::local_time(f)),
        None => row("finished", "not yet"),
    }
    row("results", &fanout::counts_line(&summary));
    if let Some(reason) = &j.stopped {
        row("stopped", reason);
    }
    fanout::print_groups(&summary.groups, &summary.skipped);
    if cmd.diff {
        fanout::print_diffs(&summary.groups);
    }
    Ok(exit::OK)
}

/// `pwctl exec jobs`: recent jobs, newest first.
pub fn jobs(client: &Client, cmd: &ExecJobs, json: bool) -> Result<i32, CtlError> {
    if cmd.limit == 0 {
        return Err(CtlError::BadInput("--limit must be at least 1".into()));
    }
    let page: JobPage = client.get(
        &format!("{API_PREFIX}/jobs"),
        &[("limit", cmd.limit.to_string())],
    )?;
    if json {
        print_json(&page);
        return Ok(exit::OK);
    }
    if page.items.is_empty() {
        eprintln!("no fan-out jobs yet");
        return Ok(exit::OK);
    }
    let rows = page
        .items
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                output::short_time(&j.created_at),
                j.total.to_string(),
                if j.finished_at.is_some() {
                    j.stopped
                        .as_ref()
                        .map_or("finished", |_| "stopped")
                        .to_owned()
                } else {
                    "running".to_owned()
                },
                output::clean_line(&j.targets),
                output::first_line(&j.command),
            ]
        })
        .collect();
    print_rows(
        &["ID", "STARTED", "PODS", "STATE", "TARGETS", "COMMAND"],
        rows,
    );
    Ok(exit::OK)
}

pub fn history(client: &Client, cmd: &ExecHistory, json: bool) -> Result<i32, CtlError> {
    if cmd.failed && cmd.status.is_some() {
        return Err(CtlError::Usage(
            "--failed and --status contradict each other".into(),
        ));
    }
    if cmd.limit == 0 {
        return Err(CtlError::BadInput("--limit must be at least 1".into()));
    }
    if let Some(format) = &cmd.export {
        return export(client, cmd, format);
    }
    let mut query: Vec<(&str, String)> = vec![("limit", cmd.limit.to_string())];
    if let Some(a) = &cmd.alias {
        query.push(("alias", a.clone()));
    }
    if let Some(s) = &cmd.set {
        query.push(("set", s.clone()));
    }
    if let Some(a) = &cmd.actor {
        query.push(("actor", a.clone()));
    }
    if let Some(j) = cmd.job {
        query.push(("job", j.to_string()));
    }
    if let Some(s) = &cmd.status {
        let status: CommandStatus = s
            .parse()
            .map_err(|e: String| CtlError::Usage(format!("--status: {e}")))?;
        query.push(("status", status.as_str().to_string()));
    }
    if let Some(since) = &cmd.since {
        chrono::DateTime::parse_from_rfc3339(since).map_err(|e| {
            CtlError::BadInput(format!(
                "--since {since:?} is not an RFC 3339 time like 2026-11-27T08:00:00Z: {e}"
            ))
        })?;
        query.push(("since", since.clone()));
    }
    if let Some(c) = &cmd.cursor {
        if cmd.failed {
            return Err(CtlError::Usage(
                "--failed shows one merged page; use --status S to page with --cursor".into(),
            ));
        }
        query.push(("cursor", c.clone()));
    }
    let path = format!("{API_PREFIX}/commands");
    let page: CommandPage = if cmd.failed {
        // The API filters by one status; ask for each unsuccessful one and merge, newest
        // (highest id) first.
        let mut items = Vec::new();
        for status in FAILED_STATUSES {
            let mut q = query.clone();
            q.push(("status", status.as_str().to_string()));
            let page: CommandPage = client.get(&path, &q)?;
            items.extend(page.items);
        }
        items.sort_by_key(|r| std::cmp::Reverse(r.id));
        items.truncate(cmd.limit);
        CommandPage {
            items,
            next_cursor: None,
        }
    } else {
        client.get(&path, &query)?
    };
    if json {
        print_json(&page);
        return Ok(exit::OK);
    }
    if page.items.is_empty() {
        eprintln!("no commands in the history match");
        return Ok(exit::OK);
    }
    let rows = page
        .items
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                output::short_time(&r.started_at),
                r.alias.clone(),
                actor_text(r),
                r.status.as_str().to_string(),
                r.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                output::duration(r.duration_ms),
                output::first_line(&r.command),
                listed_output(r),
            ]
        })
        .collect();
    print_rows(
        &[
            "ID", "STARTED", "POD", "ACTOR", "STATUS", "EXIT", "DURATION", "COMMAND", "OUTPUT",
        ],
        rows,
    );
    if let Some(cursor) = &page.next_cursor {
        eprintln!(
            "{}",
            output::dim(&format!(
                "more: pwctl exec history --cursor {cursor} (with the same filters)"
            ))
        );
    }
    Ok(exit::OK)
}

/// The first line of a listed command's output, cut to a table cell; `...` when there is more
/// (the full output is `pwctl exec show ID`).
fn listed_output(r: &podwrangler::api::CommandSummary) -> String {
    const CELL: usize = 40;
    let line = output_preview(r);
    let more = r.preview || line.chars().count() > CELL || r.stdout.trim_end().contains('\n');
    let mut cell: String = line.chars().take(CELL).collect();
    if more && !cell.is_empty() {
        cell.push_str("...");
    }
    cell
}

/// `exec history --export FORMAT`: streams the daemon's export to stdout as it arrives.
fn export(client: &Client, cmd: &ExecHistory, format: &str) -> Result<i32, CtlError> {
    if !matches!(format, "ndjson" | "csv") {
        return Err(CtlError::Usage(format!(
            "--export {format:?}: use ndjson or csv"
        )));
    }
    if cmd.failed || cmd.cursor.is_some() {
        return Err(CtlError::Usage(
            "--export takes --alias, --actor, --status and --since, not --failed or --cursor"
                .into(),
        ));
    }
    let mut query: Vec<(&str, String)> = vec![("format", format.to_owned())];
    if let Some(a) = &cmd.alias {
        query.push(("alias", a.clone()));
    }
    if let Some(a) = &cmd.actor {
        query.push(("actor", a.clone()));
    }
    if let Some(s) = &cmd.status {
        query.push(("status", s.clone()));
    }
    if let Some(s) = &cmd.since {
        query.push(("since", s.clone()));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    client.download(
        &format!("{API_PREFIX}/commands/export"),
        &query,
        None,
        &mut out,
    )?;
    std::io::Write::flush(&mut out).ok();
    Ok(exit::OK)
}

/// Who asked for a command; rows written before the daemon recorded it have no actor.
fn actor_text(r: &CommandRecord) -> String {
    r.actor
        .as_deref()
        .map(output::clean_line)
        .unwrap_or_else(|| "-".into())
}

/// What `--failed` shows: every finished status that is not a success.
const FAILED_STATUSES: [CommandStatus; 4] = [
    CommandStatus::Failed,
    CommandStatus::Timeout,
    CommandStatus::Error,
    CommandStatus::Interrupted,
];

pub fn show(client: &Client, cmd: &ExecShow, json: bool) -> Result<i32, CtlError> {
    let stream = match (cmd.stdout, cmd.stderr) {
        (true, true) => {
            return Err(CtlError::Usage("--stdout and --stderr: pick one".into()));
        }
        (true, false) => Some("stdout"),
        (false, true) => Some("stderr"),
        (false, false) => None,
    };
    if let Some(stream) = stream {
        let range = cmd.range.as_deref().map(str::trim);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        client.download(
            &format!("{API_PREFIX}/commands/{}/output", cmd.id),
            &[("stream", stream.to_owned())],
            range,
            &mut out,
        )?;
        std::io::Write::flush(&mut out).ok();
        return Ok(exit::OK);
    }
    if cmd.range.is_some() {
        return Err(CtlError::Usage("--range needs --stdout or --stderr".into()));
    }
    let r: CommandRecord = client.get(&format!("{API_PREFIX}/commands/{}", cmd.id), &[])?;
    if json {
        print_json(&r);
        return Ok(exit::OK);
    }
    let row = |k: &str, v: &str| println!("{:<9} {v}", output::dim(&format!("{k}:")));
    println!("{}", output::strong(&format!("command #{}", r.id)));
    row("pod", &format!("{} ({})", r.alias, r.pod_label));
    row("actor", &actor_text(&r));
    row("command", &r.command);
    let status = match r.status {
        CommandStatus::Succeeded => output::good("succeeded"),
        CommandStatus::Running => output::warn("running"),
        other => output::bad(other.as_str()),
    };
    row("status", &status);
    row(
        "exit",
        &r.exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    row("started", &crate::pods::local_time(&r.started_at));
    if let Some(f) = &r.finished_at {
        row("finished", &crate::pods::local_time(f));
    }
    row("duration", &output::duration(r.duration_ms));
    if let Some(e) = &r.error {
        row("error", e);
    }
    if r.truncated {
        row("note", "output truncated by the daemon");
    }
    for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if text.is_empty() {
            continue;
        }
        println!("{}", output::dim(&format!("── {name} ")));
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_exit_codes_pass_through_and_odd_ones_never_read_as_success() {
        assert_eq!(passthrough(0), 0);
        assert_eq!(passthrough(3), 3);
        assert_eq!(passthrough(255), 255);
        assert_eq!(passthrough(256), 1);
        assert_eq!(passthrough(-9), 1);
    }

    #[test]
    fn old_rows_without_an_actor_show_a_dash() {
        let mut r = CommandRecord {
            id: 1,
            alias: "web-0".into(),
            pod_label: "web-0".into(),
            command: "true".into(),
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            truncated: false,
            started_at: chrono::Utc::now(),
            finished_at: None,
            duration_ms: None,
            actor: None,
            session_restarted: false,
            history_error: None,
            job_id: None,
        };
        assert_eq!(actor_text(&r), "-");
        r.actor = Some("unix:1000(alice)".into());
        assert_eq!(actor_text(&r), "unix:1000(alice)");
    }

    #[test]
    fn alias_lists_tolerate_spaces_and_empty_items() {
        assert_eq!(split_aliases("a, b,,c "), ["a", "b", "c"]);
    }
}
