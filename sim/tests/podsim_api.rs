//! The Kubernetes API documents podsim serves, as a client library (not kubectl) sees them.

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
