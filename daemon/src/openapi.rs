//! The OpenAPI document (generated from the handlers' annotations) and a self-contained `/docs`
//! page that renders it without fetching anything from the internet.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api;
use crate::server::AppState;

/// The REST API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "PodWrangler daemon API",
        description = "Run shell commands in pods over long-lived sessions; pods, command history and fan-out. \
The Unix socket needs no credentials (callers are recorded by uid); TCP needs `Authorization: Bearer <key>` \
with a named API key whose scope allows the route: read (GET), exec (running commands) or admin (changing pods); \
403 `forbidden` otherwise. Every command and pod change records who asked. \
Errors are `application/problem+json` with a stable `code`."
    ),
    paths(
        api::health::health,
        crate::metrics::metrics,
        api::pods::list_pods,
        api::pods::create_pod,
        api::pods::get_pod,
        api::pods::update_pod,
        api::pods::delete_pod,
        api::pods::import_pods,
        api::exec::exec_pod,
        api::exec::fan_out,
        api::jobs::list_jobs,
        api::jobs::get_job,
        api::input::exec_stdin,
        api::input::exec_script,
        api::files::put_file,
        api::files::get_file,
        api::files::put_files,
        api::commands::list_commands,
        api::commands::get_command,
        api::commands::list_audit,
        api::commands::cancel_command,
        api::commands::command_output,
        api::commands::export_commands,
        api::pods::list_clusters,
        api::sets::create_set,
        api::sets::list_sets,
        api::sets::get_set,
        api::sets::delete_set,
        api::sets::get_member,
        api::sets::update_member,
        api::sets::delete_member,
        api::sets::exec_member,
    ),
    components(schemas(podwrangler::api::Problem, podwrangler::api::PodState)),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "pods", description = "Register, list, update and remove pods"),
        (name = "exec", description = "Run commands in one pod or many"),
        (name = "files", description = "Copy files into pods and out of them, verified by SHA-256"),
        (name = "history", description = "Every command that ran"),
        (name = "sets", description = "Pod sets: a cluster, namespace and label selector whose Ready pods stay registered as `SET/POD`"),
        (name = "daemon", description = "Daemon health"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// Operations that refuse new work with 503 `shutting_down` once the drain has begun.
const DRAINING: &[(&str, &str)] = &[
    ("/api/v1/pods/", "post"),
    ("/api/v1/pods/{alias}", "patch"),
    ("/api/v1/pods/import", "post"),
    ("/api/v1/pods/{alias}/exec", "post"),
    ("/api/v1/exec", "post"),
    ("/api/v1/pods/{alias}/exec/stdin", "post"),
    ("/api/v1/pods/{alias}/exec/script", "post"),
    ("/api/v1/pods/{alias}/files", "put"),
    ("/api/v1/files", "post"),
    ("/api/v1/sets", "post"),
    ("/api/v1/pods/{set}/{pod}", "patch"),
    ("/api/v1/pods/{set}/{pod}/exec", "post"),
];

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn header(description: &str) -> Value {
    json!({"description": description, "required": true, "schema": {"type": "string"}})
}

/// Adds `status` to `responses` unless the operation documents it already.
fn add(responses: &mut Map<String, Value>, status: u16, response: Value) {
    responses.entry(status.to_string()).or_insert(response);
}

/// The document as served: the handlers' annotations, plus what every operation shares (the
/// problems of authentication, scopes, methods, bodies and the drain), the alias rule on `{alias}`,
/// the fan-out's "exactly one of aliases, tag, all", and the daemon's configured maximum command
/// timeout and body size. Every status a route can answer is listed, each with its problem body.
pub fn document(max_command_timeout_secs: f64, max_body_bytes: usize) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    let alias_schema =
        serde_json::to_value(podwrangler::api::schema::alias().build()).expect("schema serializes");
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let allow = item
                .keys()
                .map(|m| m.to_uppercase())
                .collect::<Vec<_>>()
                .join(", ");
            for (method, op) in item.iter_mut() {
                let op_path = path.as_str();
                let mut has_query = false;
                let mut has_alias = false;
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for param in params.into_iter().flatten() {
                    // Query fields with a schema of their own lose `required` in utoipa.
                    if param["in"] == "query"
                        && matches!(param["name"].as_str(), Some("path" | "command"))
                    {
                        param["required"] = json!(true);
                    }
                    match (param["in"].as_str(), param["name"].as_str()) {
                        (Some("path"), Some("alias")) => {
                            param["schema"] = alias_schema.clone();
                            has_alias = true;
                        }
                        (Some("query"), _) => has_query = true,
                        _ => {}
                    }
                }
                // Raw bodies (stdin, scripts, files) say their own limits and take any type.
                let raw_body = op
                    .get("requestBody")
                    .is_some_and(|b| b["content"].get("application/octet-stream").is_some());
                let has_body = match op.get_mut("requestBody") {
                    Some(body) if raw_body => {
                        body["content"]["application/octet-stream"]["schema"] =
                            json!({"type": "string", "format": "binary"});
                        false
                    }
                    Some(body) => {
                        body["description"] = json!(format!(
                            "JSON, at most {max_body_bytes} bytes (`max_body_bytes`; larger bodies are 413). Any `Content-Type` that can be JSON is read as JSON."
                        ));
                        true
                    }
                    None => false,
                };
                let responses = op["responses"]
                    .as_object_mut()
                    .expect("every operation documents its responses");
                if has_body || has_query {
                    add(
                        responses,
                        400,
                        problem(
                            "`validation`: the body or query string cannot be read as the expected shape (malformed JSON, wrong type, missing or unknown field); `field` names it",
                        ),
                    );
                }
                if has_body || has_query || has_alias {
                    add(
                        responses,
                        422,
                        problem("`validation`: a field breaks a rule; `field` names it"),
                    );
                }
                if op_path != "/health" {
                    let mut unauthorized = problem(
                        "`unauthorized`: over TCP, no valid `Authorization: Bearer <key>` (the Unix socket needs none)",
                    );
                    unauthorized["headers"] = json!({"WWW-Authenticate": header("`Bearer`")});
                    add(responses, 401, unauthorized);
                }
                if method != "get" {
                    add(
                        responses,
                        403,
                        problem(
                            "`forbidden`: the API key's scope does not allow this (running commands needs `exec`, changing pods `admin`)",
                        ),
                    );
                }
                let mut not_allowed = problem(
                    "`method_not_allowed`: the path does not have this method; `Allow` lists the ones it has",
                );
                not_allowed["headers"] = json!({"Allow": header(&format!("`{allow}`"))});
                add(responses, 405, not_allowed);
                if has_body {
                    add(
                        responses,
                        413,
                        problem("`payload_too_large`: the body is larger than `max_body_bytes`"),
                    );
                    add(
                        responses,
                        415,
                        problem(
                            "`unsupported_media_type`: the body's `Content-Type` cannot be JSON (multipart, image, audio, video, font)",
                        ),
                    );
                }
                if let Some(busy) = responses.get_mut("429") {
                    busy["headers"] = json!({"Retry-After": header("Seconds to wait")});
                }
                if DRAINING.contains(&(op_path, method.as_str())) {
                    add(
                        responses,
                        503,
                        problem("`shutting_down`: the daemon is draining and takes no new work"),
                    );
                }
                if op_path != "/health" {
                    add(
                        responses,
                        500,
                        problem(
                            "`internal`: the daemon's store or an actor failed; never expected",
                        ),
                    );
                }
                let mut sorted: Vec<(String, Value)> =
                    std::mem::take(responses).into_iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                responses.extend(sorted);
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    for name in ["ExecRequest", "FanOutRequest"] {
        if let Some(timeout) = schemas[name]["properties"].get_mut("timeout") {
            timeout["maximum"] = json!(max_command_timeout_secs);
        }
    }
    // Exactly one of `aliases`, `tag`, `set` and `all: true` with a `command`, or
    // `rerun_failed` without one (null counts as absent, as serde reads it).
    schemas["FanOutRequest"]["oneOf"] = json!([
        {"required": ["aliases", "command"], "properties": {
            "aliases": {"type": "array"}, "tag": {"type": "null"}, "set": {"type": "null"},
            "all": {"const": false}, "rerun_failed": {"type": "null"}}},
        {"required": ["tag", "command"], "properties": {
            "tag": {"type": "string"}, "aliases": {"type": "null"}, "set": {"type": "null"},
            "all": {"const": false}, "rerun_failed": {"type": "null"}}},
        {"required": ["set", "command"], "properties": {
            "set": {"type": "string"}, "aliases": {"type": "null"}, "tag": {"type": "null"},
            "all": {"const": false}, "rerun_failed": {"type": "null"}}},
        {"required": ["all", "command"], "properties": {
            "all": {"const": true}, "aliases": {"type": "null"}, "tag": {"type": "null"},
            "set": {"type": "null"}, "rerun_failed": {"type": "null"}}},
        {"required": ["rerun_failed"], "not": {"required": ["command"]}, "properties": {
            "rerun_failed": {"type": "integer"}, "aliases": {"type": "null"},
            "tag": {"type": "null"}, "set": {"type": "null"}, "all": {"const": false}}},
    ]);
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(
        state.config.max_command_timeout.as_secs_f64(),
        state.config.max_body_bytes,
    ))
}

/// `GET /docs`: lists every operation of the document with its parameters, body and responses.
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DOCS_HTML)
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PodWrangler API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#0a7}.post{color:#06c}.patch{color:#a60}.delete{color:#c22}
code,pre{background:#f5f5f5;border-radius:4px;padding:.1rem .3rem} pre{padding:.5rem;overflow:auto}
details summary{cursor:pointer} table{border-collapse:collapse} td{padding:.15rem .6rem;vertical-align:top}
</style></head><body>
<h1 id="title">PodWrangler API</h1><p id="desc"></p>
<p>Machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
<div id="ops">Loading&hellip;</div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const ref = (doc, r) => r && r.$ref ? doc.components.schemas[r.$ref.split("/").pop()] : r;
const schemaName = s => s ? (s.$ref ? s.$ref.split("/").pop() : (s.type === "array" && s.items ? schemaName(s.items) + "[]" : (s.type || ""))) : "";
fetch("/api/v1/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      html += `<div class="op"><span class="m ${method}">${method}</span> <code>${esc(path)}</code> &mdash; ${esc(op.summary || op.description || "")}`;
      if (op.parameters && op.parameters.length) {
        html += "<table>" + op.parameters.map(p => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${esc(schemaName(p.schema))}</td><td>${esc(p.description || "")}</td></tr>`).join("") + "</table>";
      }
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) {
        const s = ref(doc, body.schema);
        html += `<details><summary>Request body: ${esc(schemaName(body.schema))}</summary><pre>${esc(JSON.stringify(s, null, 2))}</pre></details>`;
      }
      html += "<table>" + Object.entries(op.responses || {}).map(([code, r]) => {
        const c = r.content ? Object.values(r.content)[0] : null;
        return `<tr><td><b>${esc(code)}</b></td><td>${esc(r.description)}</td><td>${esc(c ? schemaName(c.schema) : "")}</td></tr>`;
      }).join("") + "</table></div>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch(e => { document.getElementById("ops").textContent = "Cannot load the document: " + e; });
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/health",
            "/api/v1/pods/",
            "/api/v1/pods/{alias}",
            "/api/v1/pods/{alias}/exec",
            "/api/v1/pods/import",
            "/api/v1/exec",
            "/api/v1/commands",
            "/api/v1/commands/{id}",
            "/api/v1/commands/{id}/output",
        ] {
            assert!(paths.contains_key(p), "missing {p}");
        }
        // A listing row is the record plus its sizes and the preview flag.
        let summary = doc["components"]["schemas"]["CommandSummary"].to_string();
        for field in [
            "stdout_bytes",
            "stderr_bytes",
            "command_bytes",
            "preview",
            "CommandRecord",
        ] {
            assert!(summary.contains(field), "{field} missing from {summary}");
        }
        assert!(doc["components"]["schemas"]["PodCreate"].is_object());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }

    #[test]
    fn every_operation_documents_its_problems() {
        let doc = document(60.0, 4096);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let r = &op["responses"];
                assert!(r["405"]["headers"]["Allow"].is_object(), "{method} {path}");
                if path != "/health" {
                    assert!(r["401"].is_object(), "{method} {path}");
                    assert!(r["500"].is_object(), "{method} {path}");
                }
                if method != "get" {
                    assert!(r["403"].is_object(), "{method} {path}");
                }
                if let Some(body) = op.get("requestBody") {
                    // Raw bodies (stdin, scripts, files) take any Content-Type: no 415.
                    let raw = body["content"].get("application/octet-stream").is_some();
                    for s in ["400", "413", "415", "422"] {
                        if raw && s == "415" {
                            continue;
                        }
                        assert!(r[s].is_object(), "{s} {method} {path}");
                    }
                }
            }
        }
        let exec = &doc["components"]["schemas"]["ExecRequest"]["properties"]["timeout"];
        assert_eq!(exec["maximum"], 60.0);
        assert_eq!(exec["exclusiveMinimum"], 0);
        let alias = &doc["paths"]["/api/v1/pods/{alias}"]["get"]["parameters"][0]["schema"];
        assert_eq!(alias["maxLength"], 128);
    }
}
