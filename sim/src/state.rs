//! The simulated cluster's state: pods, their live connections and the faults injected into them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::cluster::{Cluster, PodStatus};

/// Faults that stay in force until cleared (the one-shot actions are applied immediately).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Faults {
    pub drop_after_ms: Option<u64>,
    pub refuse: bool,
    pub latency_ms: u64,
    pub stall: bool,
}

/// Body of `POST /_podsim/pods/{name}/faults`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub drop_now: bool,
    pub drop_after_ms: Option<u64>,
    pub refuse: Option<bool>,
    pub latency_ms: Option<u64>,
    pub stall: Option<bool>,
    #[serde(default)]
    pub kill_shell: bool,
}

/// One live WebSocket connection to a pod.
pub struct LiveConn {
    /// Process group of the connection's process; 0 until spawned.
    pub pgid: AtomicI32,
    /// Notified to drop the TCP connection at once, with no close frame.
    pub drop: Notify,
}

pub struct Pod {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub uid: String,
    pub ip: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub faults: watch::Sender<Faults>,
    live: Mutex<HashMap<u64, Arc<LiveConn>>>,
    pub connections_total: AtomicU64,
    status: Mutex<PodStatus>,
}

impl Pod {
    pub fn new(
        name: String,
        index: usize,
        labels: BTreeMap<String, String>,
        status: PodStatus,
    ) -> Pod {
        let r: u128 = rand::random();
        let h = format!("{r:032x}");
        let uid = format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        );
        let ip = format!("10.244.{}.{}", (index / 250) % 256, index % 250 + 2);
        Pod {
            name,
            labels,
            uid,
            ip,
            created: chrono::Utc::now(),
            faults: watch::channel(Faults::default()).0,
            live: Mutex::new(HashMap::new()),
            connections_total: AtomicU64::new(0),
            status: Mutex::new(status),
        }
    }

    /// The pod's current status.
    pub fn status(&self) -> PodStatus {
        self.status.lock().unwrap().clone()
    }

    /// Changes the status; returns the new one.
    pub fn update_status(&self, f: impl FnOnce(&mut PodStatus)) -> PodStatus {
        let mut s = self.status.lock().unwrap();
        f(&mut s);
        s.clone()
    }

    /// Kills every shell of the pod and cuts its connections (the container stops).
    pub fn kill_all(&self) {
        for c in self.live_conns() {
            crate::shell::kill_group(c.pgid.load(Ordering::SeqCst));
            c.drop.notify_one();
        }
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap().len()
    }

    fn live_conns(&self) -> Vec<Arc<LiveConn>> {
        self.live.lock().unwrap().values().cloned().collect()
    }

    /// Applies a fault request: one-shot actions now, the rest stored.
    pub fn apply(&self, req: &FaultRequest) {
        self.faults.send_modify(|f| {
            if let Some(ms) = req.drop_after_ms {
                f.drop_after_ms = Some(ms);
            }
            if let Some(r) = req.refuse {
                f.refuse = r;
            }
            if let Some(ms) = req.latency_ms {
                f.latency_ms = ms;
            }
            if let Some(s) = req.stall {
                f.stall = s;
            }
        });
        if req.kill_shell {
            for c in self.live_conns() {
                crate::shell::kill_group(c.pgid.load(Ordering::SeqCst));
            }
        }
        if req.drop_now {
            for c in self.live_conns() {
                c.drop.notify_one();
            }
        }
    }

    pub fn clear_faults(&self) {
        self.faults.send_replace(Faults::default());
    }
}

/// Registration of a live connection; unregisters on drop.
pub struct LiveGuard {
    pub pod: Arc<Pod>,
    pub conn: Arc<LiveConn>,
    id: u64,
}

impl LiveGuard {
    pub fn register(pod: &Arc<Pod>) -> LiveGuard {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(LiveConn {
            pgid: AtomicI32::new(0),
            drop: Notify::new(),
        });
        pod.connections_total.fetch_add(1, Ordering::SeqCst);
        pod.live.lock().unwrap().insert(id, conn.clone());
        LiveGuard {
            pod: pod.clone(),
            conn,
            id,
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.pod.live.lock().unwrap().remove(&self.id);
    }
}

pub struct State {
    pub namespace: String,
    pub token: String,
    pub app: String,
    pub tls: bool,
    pub workdir: PathBuf,
    pub address: String,
    /// The pods, as they come and go.
    pub cluster: Arc<Cluster>,
    pub started: chrono::DateTime<chrono::Utc>,
    /// Close a connection that carried no data frame, either way, for this long (the
    /// kubelet's `--streaming-connection-idle-timeout`; WebSocket pings do not count).
    pub idle_timeout: Option<std::time::Duration>,
    /// Offer exec only `v4.channel.k8s.io` (API servers before Kubernetes 1.30).
    pub exec_v4_only: bool,
}

impl State {
    pub fn pod(&self, name: &str) -> Option<Arc<Pod>> {
        self.cluster.pod(name)
    }

    /// Every live process group of every pod (to kill them all at exit).
    pub fn all_pgids(&self) -> Vec<i32> {
        self.cluster
            .pods()
            .iter()
            .flat_map(|p| p.live_conns())
            .map(|c| c.pgid.load(Ordering::SeqCst))
            .filter(|&g| g > 1)
            .collect()
    }
}
