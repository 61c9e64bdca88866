//! The Kubernetes API objects podsim serves: discovery documents, Pods, PodLists, the
//! meta.k8s.io/v1 Table that `kubectl get` asks for, and metav1.Status errors.

use serde_json::{Value, json};

use crate::cluster::PodStatus;
use crate::state::{Pod, State};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-podsim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]
    })
}

pub fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

pub fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
             "verbs": ["get", "list"], "shortNames": ["ns"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["delete", "get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]},
            {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions",
             "verbs": ["create", "get"]}
        ]
    })
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn metadata(pod: &Pod, status: &PodStatus, state: &State) -> Value {
    let hash = pod
        .labels
        .get("pod-template-hash")
        .map(String::as_str)
        .unwrap_or("5d8f7");
    let mut m = json!({
        "name": pod.name,
        "generateName": format!("{}-{hash}-", state.app),
        "namespace": state.namespace,
        "uid": pod.uid,
        "resourceVersion": status.resource_version.max(1).to_string(),
        "creationTimestamp": ts(pod.created),
        "labels": pod.labels,
    });
    if let Some(d) = status.deletion {
        m["deletionTimestamp"] = json!(ts(d));
        m["deletionGracePeriodSeconds"] = json!(status.grace_seconds);
    }
    m
}

/// The STATUS column of `kubectl get pods`.
fn status_word(status: &PodStatus) -> &'static str {
    if status.deletion.is_some() {
        "Terminating"
    } else if status.ready_at.is_some() {
        "Running"
    } else {
        "ContainerCreating"
    }
}

pub fn pod_json(pod: &Pod, status: &PodStatus, state: &State) -> Value {
    let created = ts(pod.created);
    let ready = if status.ready { "True" } else { "False" };
    let since = status.ready_at.map(ts).unwrap_or_else(|| created.clone());
    let started = status.ready_at.is_some();
    let container_state = if started {
        json!({"running": {"startedAt": since}})
    } else {
        json!({"waiting": {"reason": "ContainerCreating"}})
    };
    let phase = if started { "Running" } else { "Pending" };
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata(pod, status, state),
        "spec": {
            "containers": [{
                "name": state.app,
                "image": "podsim/shell:latest",
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeName": "podsim-node",
            "schedulerName": "default-scheduler"
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": created},
                {"type": "Ready", "status": ready, "lastTransitionTime": since},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": since},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": created}
            ],
            "hostIP": "10.0.0.1",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "startTime": created,
            "containerStatuses": [{
                "name": state.app,
                "state": container_state,
                "ready": status.ready,
                "restartCount": 0,
                "image": "podsim/shell:latest",
                "imageID": "podsim/shell@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "containerID": format!("containerd://{}", pod.uid.replace('-', "")),
                "started": started
            }],
            "qosClass": "BestEffort"
        }
    })
}

pub fn pod_list(pods: &[(&Pod, &PodStatus)], resource_version: u64, state: &State) -> Value {
    json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "items": pods.iter().map(|(p, s)| pod_json(p, s, state)).collect::<Vec<_>>()
    })
}

/// Age as kubectl prints it: 45s, 12m, 3h, 2d.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub fn pod_table(pods: &[(&Pod, &PodStatus)], resource_version: u64, state: &State) -> Value {
    let now = chrono::Utc::now();
    let col = |name: &str, ty: &str, format: &str, priority: u8, description: &str| json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority});
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": [
            col("Name", "string", "name", 0, "Name must be unique within a namespace."),
            col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted."),
            col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("IP", "string", "", 1, "IP address allocated to the pod."),
            col("Node", "string", "", 1, "NodeName is a request to schedule this pod onto a specific node."),
        ],
        "rows": pods.iter().map(|(p, s)| json!({
            "cells": [p.name, if s.ready { "1/1" } else { "0/1" }, status_word(s), "0",
                      human_age((now - p.created).num_seconds()), p.ip, "podsim-node"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata(p, s, state)
            }
        })).collect::<Vec<_>>()
    })
}

pub fn namespace_json(name: &str, created: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "resourceVersion": "1", "creationTimestamp": ts(created),
                     "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

/// A metav1.Status error body.
pub fn status_error(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

pub fn pod_not_found(name: &str) -> Value {
    status_error(
        404,
        "NotFound",
        &format!("pods \"{name}\" not found"),
        Some(json!({"name": name, "kind": "pods"})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(600), "10m");
        assert_eq!(human_age(3 * 3600), "3h");
        assert_eq!(human_age(3 * 86400), "3d");
    }
}
