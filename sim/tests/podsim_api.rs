//! The Kubernetes API documents podsim serves, as a client library (not kubectl) sees them.

use std::time::Duration;

use serde_json::Value;
use testkit::Podsim;

fn get(sim: &Podsim, path: &str, accept: Option<&str>) -> (u16, Value) {
    let auth = format!("Bearer {}", sim.info.token);
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(a) = accept {
        headers.push(("Accept", a));
    }
    let (status, body) = testkit::http_request(&sim.info.address, "GET", path, &headers, None)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
    (status, v)
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn discovery_documents() {
    let sim = Podsim::start(1);
    let (s, v) = get(&sim, "/version", None);
    assert_eq!((s, v["major"].as_str()), (200, Some("1")));
    let (_, v) = get(&sim, "/api", None);
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"][0], "v1");
    let (_, v) = get(&sim, "/apis", None);
    assert_eq!(v["kind"], "APIGroupList");
    let (_, v) = get(&sim, "/api/v1", None);
    let resources: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        resources.contains(&"pods") && resources.contains(&"pods/exec"),
        "{resources:?}"
    );
    let (s, v) = get(&sim, "/apis/apps/v1", None);
    assert_eq!(s, 404);
    assert_eq!(v["kind"], "Status");
}

#[test]
fn pod_lists_filter_by_label_and_field_selectors() {
    let sim = Podsim::start(6);
    let all = sim.pod_names();
    let (s, v) = get(&sim, "/api/v1/namespaces/default/pods", None);
    assert_eq!(s, 200);
    assert_eq!(v["kind"], "PodList");
    assert_eq!(names(&v), all);
    let (_, v) = get(
        &sim,
        "/api/v1/pods?labelSelector=parity%3Dodd%2Capp%3Dweb",
        None,
    );
    assert_eq!(names(&v), [all[1].clone(), all[3].clone(), all[5].clone()]);
    let (_, v) = get(
        &sim,
        "/api/v1/namespaces/default/pods?labelSelector=index%20in%20(1%2C2)",
        None,
    );
    assert_eq!(names(&v), [all[1].clone(), all[2].clone()]);
    let (_, v) = get(
        &sim,
        "/api/v1/namespaces/default/pods?labelSelector=parity!%3Dodd,index%20notin%20(0)",
        None,
    );
    assert_eq!(names(&v), [all[2].clone(), all[4].clone()]);
    let path = format!(
        "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D{}",
        all[4]
    );
    let (_, v) = get(&sim, &path, None);
    assert_eq!(names(&v), [all[4].clone()]);
    let (s, v) = get(
        &sim,
        "/api/v1/namespaces/default/pods?labelSelector=index%20in%201",
        None,
    );
    assert_eq!(s, 400);
    assert_eq!(v["reason"], "BadRequest");
    let (_, v) = get(&sim, "/api/v1/namespaces/elsewhere/pods", None);
    assert!(names(&v).is_empty());
}

#[test]
fn a_pod_reads_like_a_running_kubernetes_pod() {
    let sim = Podsim::start(3);
    let name = &sim.info.pods[2].name;
    let (s, p) = get(
        &sim,
        &format!("/api/v1/namespaces/default/pods/{name}"),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(p["apiVersion"], "v1");
    assert_eq!(p["metadata"]["name"], name.as_str());
    assert_eq!(p["metadata"]["labels"]["app"], "web");
    assert_eq!(p["metadata"]["labels"]["index"], "2");
    assert_eq!(p["metadata"]["labels"]["parity"], "even");
    assert!(
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(p["spec"]["containers"][0]["name"], "web");
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    let (_, other) = get(
        &sim,
        &format!("/api/v1/namespaces/default/pods/{}", sim.info.pods[1].name),
        None,
    );
    assert_ne!(p["metadata"]["uid"], other["metadata"]["uid"]);
    assert_ne!(p["status"]["podIP"], other["status"]["podIP"]);
    let (s, v) = get(
        &sim,
        "/api/v1/namespaces/default/pods/web-5d8f7-12345",
        None,
    );
    assert_eq!(s, 404);
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(v["details"]["name"], "web-5d8f7-12345");
}

#[test]
fn table_output_when_asked_for_it() {
    let sim = Podsim::start(2);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (s, t) = get(
        &sim,
        "/api/v1/namespaces/default/pods?limit=500",
        Some(accept),
    );
    assert_eq!(s, 200);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["cells"][0], sim.info.pods[1].name.as_str());
    assert_eq!(rows[1]["cells"][2], "Running");
    assert_eq!(rows[1]["object"]["metadata"]["labels"]["parity"], "odd");
}

// ----- a cluster that changes: resource versions, watch, delete, create, rollout -----

fn start_changing(pods: usize, extra: &[&str]) -> Podsim {
    Podsim::start_with(testkit::PodsimOptions {
        pods,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

/// The events of a watch that ends after `timeoutSeconds`, one JSON value per line.
fn watch(sim: &Podsim, path: &str) -> Vec<Value> {
    let auth = format!("Bearer {}", sim.info.token);
    let (status, body) = testkit::http_request(
        &sim.info.address,
        "GET",
        path,
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "{path}: {body}");
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

fn ready_condition(pod: &Value) -> String {
    pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap()
}

fn admin_json(sim: &Podsim, method: &str, path: &str, body: Option<&str>) -> Value {
    let (status, text) = sim.admin_request(method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap()
}

#[test]
fn watch_resumes_from_a_listed_resource_version_and_sees_a_new_pod_become_ready() {
    let sim = start_changing(2, &[]);
    let (_, list) = get(&sim, "/api/v1/namespaces/default/pods", None);
    let listed = rv_of(&list);
    let created = admin_json(&sim, "POST", "/_podsim/pods", Some(r#"{"count": 1}"#));
    let name = created["pods"][0].as_str().unwrap().to_string();
    assert!(testkit::wait_until(Duration::from_secs(30), || {
        let (_, p) = get(
            &sim,
            &format!("/api/v1/namespaces/default/pods/{name}"),
            None,
        );
        ready_condition(&p) == "True"
    }));
    let events = watch(
        &sim,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={listed}&timeoutSeconds=1"
        ),
    );
    let kinds: Vec<(&str, &str, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
                ready_condition(&e["object"]),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ADDED", name.as_str(), "False".to_string()),
            ("MODIFIED", name.as_str(), "True".to_string())
        ]
    );
    let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
    assert!(rvs[0] > listed && rvs[1] > rvs[0], "{rvs:?} after {listed}");
    assert_eq!(events[0]["object"]["status"]["phase"], "Pending");

    // Without a resourceVersion a watch starts with every current pod as ADDED.
    let events = watch(
        &sim,
        "/api/v1/pods?watch=true&timeoutSeconds=1&labelSelector=app%3Dweb",
    );
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|e| e["type"] == "ADDED"));
}

#[test]
fn a_deleted_pod_is_terminating_then_gone_and_watches_say_so() {
    let sim = start_changing(2, &["--termination-grace", "0.3"]);
    let (_, list) = get(&sim, "/api/v1/namespaces/default/pods", None);
    let listed = rv_of(&list);
    let victim = sim.pod_names()[1].clone();
    let auth = format!("Bearer {}", sim.info.token);
    let path = format!("/api/v1/namespaces/default/pods/{victim}");
    let (status, body) = testkit::http_request(
        &sim.info.address,
        "DELETE",
        &path,
        &[("Authorization", auth.as_str())],
        Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":30}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let pod: Value = serde_json::from_str(&body).unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(ready_condition(&pod), "False");
    assert!(testkit::wait_until(Duration::from_secs(30), || {
        get(&sim, &path, None).0 == 404
    }));
    let (status, _) = testkit::http_request(
        &sim.info.address,
        "DELETE",
        &path,
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap();
    assert_eq!(status, 404);
    let events = watch(
        &sim,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={listed}&timeoutSeconds=1&fieldSelector=metadata.name%3D{victim}"
        ),
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["MODIFIED", "DELETED"]);
    let (_, list) = get(&sim, "/api/v1/namespaces/default/pods", None);
    assert_eq!(names(&list), vec![sim.pod_names()[0].clone()]);
}

#[test]
fn a_resource_version_older_than_the_watch_cache_is_gone() {
    let sim = start_changing(1, &["--watch-cache-size", "2"]);
    let (_, list) = get(&sim, "/api/v1/namespaces/default/pods", None);
    let listed = rv_of(&list);
    admin_json(&sim, "POST", "/_podsim/pods", Some(r#"{"count": 3}"#));
    let events = watch(
        &sim,
        &format!("/api/v1/pods?watch=true&resourceVersion={listed}&timeoutSeconds=1"),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    let (status, _) = get(&sim, "/api/v1/pods?watch=true&resourceVersion=abc", None);
    assert_eq!(status, 400);
}

#[test]
fn a_rollout_replaces_every_matching_pod_with_new_names() {
    let sim = start_changing(4, &["--termination-grace", "0"]);
    let before = sim.pod_names();
    let roll = admin_json(
        &sim,
        "POST",
        "/_podsim/rollout",
        Some(r#"{"selector": "parity=even", "batch": 1, "wait": true}"#),
    );
    assert_eq!(roll["replacing"], 2);
    let hash = roll["template_hash"].as_str().unwrap().to_string();
    assert!(testkit::wait_until(Duration::from_secs(30), || {
        let (_, l) = get(&sim, "/api/v1/namespaces/default/pods", None);
        names(&l).len() == 4
    }));
    let (_, list) = get(&sim, "/api/v1/namespaces/default/pods", None);
    let now = names(&list);
    // The odd pods stay; the even ones are replaced by Ready pods of the new template.
    assert!(
        now.contains(&before[1]) && now.contains(&before[3]),
        "{now:?}"
    );
    assert!(
        !now.contains(&before[0]) && !now.contains(&before[2]),
        "{now:?}"
    );
    let fresh: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .collect();
    assert_eq!(fresh.len(), 2);
    for p in fresh {
        assert_eq!(p["metadata"]["labels"]["parity"], "even");
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert_eq!(ready_condition(p), "True");
    }
    let (status, _) = sim.admin_request(
        "POST",
        "/_podsim/rollout",
        Some(r#"{"selector": "a in ("}"#),
    );
    assert_eq!(status, 400);
}
