//! `pwctl clusters`: the Kubernetes clusters the daemon's administrator configured, which
//! `pod add --cluster` and `pod import --cluster` name (`GET /api/v1/clusters`).

use podwrangler::api::{API_PREFIX, ClusterInfo};

use crate::client::Client;
use crate::error::{CtlError, exit};
use crate::output::{print_json, print_rows};

pub fn list(client: &Client, json: bool) -> Result<i32, CtlError> {
    let clusters: Vec<ClusterInfo> = client.get(&format!("{API_PREFIX}/clusters"), &[])?;
    if json {
        print_json(&clusters);
        return Ok(exit::OK);
    }
    if clusters.is_empty() {
        eprintln!(
            "the daemon has no clusters configured (its administrator adds [clusters.NAME] to \
             podwranglerd.toml); use your own kubeconfig with --kubeconfig/--context instead"
        );
        return Ok(exit::OK);
    }
    let rows = clusters
        .into_iter()
        .map(|c| vec![c.name, c.source])
        .collect();
    print_rows(&["NAME", "SOURCE"], rows);
    Ok(exit::OK)
}
