//! The pods of the simulated cluster as they come and go: resource versions, the event log that
//! watches replay, creation (Pending until a shell starts, then Ready), graceful deletion
//! (Terminating, shells killed after the grace period, then gone) and rolling replacement.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::selector::Selector;
use crate::state::Pod;

/// A pod's changing status.
#[derive(Clone, Debug)]
pub struct PodStatus {
    pub ready: bool,
    pub ready_at: Option<chrono::DateTime<chrono::Utc>>,
    pub deletion: Option<chrono::DateTime<chrono::Utc>>,
    pub grace_seconds: u64,
    pub resource_version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch reports it: the pod and its status at that resource version.
#[derive(Clone)]
pub struct Event {
    pub kind: EventType,
    pub pod: Arc<Pod>,
    pub status: PodStatus,
}

impl Event {
    pub fn resource_version(&self) -> u64 {
        self.status.resource_version
    }
}

struct Inner {
    pods: Vec<Arc<Pod>>,
    by_name: HashMap<String, Arc<Pod>>,
    resource_version: u64,
    log: VecDeque<Event>,
    template_hash: String,
    next_index: usize,
}

/// Where a watch starts.
pub enum WatchStart {
    /// Every current pod as ADDED (no resourceVersion, or "0"), then changes.
    Current(Vec<Event>),
    /// Changes after the given resource version.
    Backlog(Vec<Event>),
    /// The resource version is older than the event log: 410 Gone.
    Expired { oldest: u64 },
}

/// The mutable pod collection. Every change takes one lock, gets the next resource version and
/// goes to the event log and the live watchers in that order.
pub struct Cluster {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    pub app: String,
    pub workdir: PathBuf,
    /// The most a deleted pod stays Terminating (its shells live on) before it is gone.
    pub termination_grace: Duration,
    /// How many events a watch can be resumed from; older resource versions get 410 Gone.
    log_capacity: usize,
}

/// Body of `POST /_podsim/pods`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(default = "one")]
    pub count: usize,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Default for CreateRequest {
    fn default() -> Self {
        CreateRequest {
            count: 1,
            labels: BTreeMap::new(),
        }
    }
}

fn one() -> usize {
    1
}

/// Body of `POST /_podsim/rollout`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Which pods to replace (default: every pod).
    #[serde(default)]
    pub selector: String,
    /// Pods replaced at a time (default 1): that many new pods start and become Ready, then as
    /// many old ones are deleted.
    #[serde(default = "one")]
    pub batch: usize,
    /// Pause between batches (default 0).
    #[serde(default)]
    pub interval_ms: u64,
    /// Answer when the rollout has finished rather than when it has started.
    #[serde(default)]
    pub wait: bool,
}

/// A random suffix as Kubernetes makes them (no vowels, no look-alikes).
fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Cluster {
    /// The cluster with `count` pods of `app`, all Ready.
    pub fn new(
        app: &str,
        count: usize,
        workdir: PathBuf,
        termination_grace: Duration,
        log_capacity: usize,
    ) -> Cluster {
        let template_hash = "5d8f7".to_string();
        let mut inner = Inner {
            pods: Vec::with_capacity(count),
            by_name: HashMap::with_capacity(count),
            resource_version: 1,
            log: VecDeque::new(),
            template_hash: template_hash.clone(),
            next_index: count,
        };
        let now = chrono::Utc::now();
        for i in 0..count {
            let pod = Arc::new(Pod::new(
                format!("{app}-{template_hash}-{i:05}"),
                i,
                default_labels(app, i, &template_hash),
                PodStatus {
                    ready: true,
                    ready_at: Some(now),
                    deletion: None,
                    grace_seconds: 0,
                    resource_version: 1,
                },
            ));
            inner.by_name.insert(pod.name.clone(), pod.clone());
            inner.pods.push(pod);
        }
        Cluster {
            inner: Mutex::new(inner),
            events: broadcast::channel(65_536).0,
            app: app.to_string(),
            workdir,
            termination_grace,
            log_capacity: log_capacity.max(1),
        }
    }

    pub fn pod(&self, name: &str) -> Option<Arc<Pod>> {
        self.inner.lock().unwrap().by_name.get(name).cloned()
    }

    /// Every pod, oldest first.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.inner.lock().unwrap().pods.clone()
    }

    /// Every pod with its status, and the resource version of that snapshot.
    pub fn snapshot(&self) -> (u64, Vec<(Arc<Pod>, PodStatus)>) {
        let inner = self.inner.lock().unwrap();
        let pods = inner.pods.iter().map(|p| (p.clone(), p.status())).collect();
        (inner.resource_version, pods)
    }

    /// Starts a watch: where it begins, and the receiver of every later change. Both come from
    /// one lock, so no change falls between them.
    pub fn watch(&self, from: Option<u64>) -> (u64, WatchStart, broadcast::Receiver<Event>) {
        let inner = self.inner.lock().unwrap();
        let rx = self.events.subscribe();
        let current = inner.resource_version;
        let start = match from {
            None | Some(0) => WatchStart::Current(
                inner
                    .pods
                    .iter()
                    .map(|p| Event {
                        kind: EventType::Added,
                        pod: p.clone(),
                        status: p.status(),
                    })
                    .collect(),
            ),
            Some(rv) => {
                let oldest_kept = inner.log.front().map(|e| e.resource_version());
                match oldest_kept {
                    // Events between `rv` and the oldest kept one are gone.
                    Some(oldest) if rv + 1 < oldest => WatchStart::Expired { oldest },
                    _ => WatchStart::Backlog(
                        inner
                            .log
                            .iter()
                            .filter(|e| e.resource_version() > rv)
                            .cloned()
                            .collect(),
                    ),
                }
            }
        };
        (current, start, rx)
    }

    /// Records a change under the lock: next resource version, event log, live watchers.
    fn record(&self, inner: &mut Inner, pod: &Arc<Pod>, kind: EventType) {
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let status = pod.update_status(|s| s.resource_version = rv);
        let event = Event {
            kind,
            pod: pod.clone(),
            status,
        };
        if inner.log.len() >= self.log_capacity {
            inner.log.pop_front();
        }
        inner.log.push_back(event.clone());
        let _ = self.events.send(event);
    }

    /// Creates pods (Pending); each becomes Ready once a shell has started in its directory.
    pub fn create(
        self: &Arc<Self>,
        req: &CreateRequest,
        template_hash: Option<&str>,
    ) -> Vec<Arc<Pod>> {
        let mut created = Vec::with_capacity(req.count);
        {
            let mut inner = self.inner.lock().unwrap();
            let hash = template_hash
                .map(str::to_string)
                .unwrap_or_else(|| inner.template_hash.clone());
            for _ in 0..req.count {
                let index = inner.next_index;
                inner.next_index += 1;
                let mut labels = default_labels(&self.app, index, &hash);
                for (k, v) in &req.labels {
                    labels.insert(k.clone(), v.clone());
                }
                labels.insert("pod-template-hash".into(), hash.clone());
                let name = loop {
                    let n = format!("{}-{hash}-{}", self.app, random_suffix(5));
                    if !inner.by_name.contains_key(&n) {
                        break n;
                    }
                };
                let pod = Arc::new(Pod::new(
                    name,
                    index,
                    labels,
                    PodStatus {
                        ready: false,
                        ready_at: None,
                        deletion: None,
                        grace_seconds: 0,
                        resource_version: 0,
                    },
                ));
                inner.by_name.insert(pod.name.clone(), pod.clone());
                inner.pods.push(pod.clone());
                self.record(&mut inner, &pod, EventType::Added);
                created.push(pod);
            }
        }
        for pod in &created {
            let me = self.clone();
            let pod = pod.clone();
            tokio::spawn(async move { me.start_container(pod).await });
        }
        created
    }

    /// "Starts the container": a shell must run in the pod's directory before it is Ready.
    async fn start_container(&self, pod: Arc<Pod>) {
        let dir = match crate::shell::pod_dir(&self.workdir, &pod.name) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(pod = %pod.name, error = %e, "cannot create the pod directory");
                return;
            }
        };
        let up = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("true")
            .current_dir(&dir)
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !up {
            tracing::warn!(pod = %pod.name, "the pod's shell did not start");
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        if !inner.by_name.contains_key(&pod.name) || pod.status().deletion.is_some() {
            return;
        }
        pod.update_status(|s| {
            s.ready = true;
            s.ready_at = Some(chrono::Utc::now());
        });
        self.record(&mut inner, &pod, EventType::Modified);
    }

    /// Deletes a pod gracefully: Terminating (not Ready) now; after the grace period its shells
    /// are killed and it is gone. `None` when there is no such pod.
    pub fn delete(self: &Arc<Self>, name: &str, grace: Option<Duration>) -> Option<PodStatus> {
        let grace = grace
            .unwrap_or(self.termination_grace)
            .min(self.termination_grace);
        let mut inner = self.inner.lock().unwrap();
        let pod = inner.by_name.get(name).cloned()?;
        if pod.status().deletion.is_some() {
            return Some(pod.status());
        }
        pod.update_status(|s| {
            s.ready = false;
            s.deletion = Some(chrono::Utc::now());
            s.grace_seconds = grace.as_secs();
        });
        self.record(&mut inner, &pod, EventType::Modified);
        let status = pod.status();
        drop(inner);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            me.remove(&pod);
        });
        Some(status)
    }

    /// The end of a deletion: shells killed, connections cut, pod gone.
    fn remove(&self, pod: &Arc<Pod>) {
        pod.kill_all();
        let mut inner = self.inner.lock().unwrap();
        if inner.by_name.remove(&pod.name).is_none() {
            return;
        }
        inner.pods.retain(|p| !Arc::ptr_eq(p, pod));
        self.record(&mut inner, pod, EventType::Deleted);
    }

    /// Replaces every pod the selector matches with new ones under a new template hash, batch by
    /// batch: new pods start and become Ready, then the old ones are deleted. Returns the hash.
    pub fn start_rollout(
        self: &Arc<Self>,
        selector: &Selector,
        req: &RolloutRequest,
    ) -> (String, usize, tokio::task::JoinHandle<()>) {
        let hash = random_suffix(5);
        let old: Vec<Arc<Pod>> = {
            let mut inner = self.inner.lock().unwrap();
            inner.template_hash = hash.clone();
            inner
                .pods
                .iter()
                .filter(|p| selector.matches(&p.labels) && p.status().deletion.is_none())
                .cloned()
                .collect()
        };
        let count = old.len();
        let batch = req.batch.max(1);
        let interval = Duration::from_millis(req.interval_ms);
        let me = self.clone();
        let hash2 = hash.clone();
        let task = tokio::spawn(async move {
            for (i, chunk) in old.chunks(batch).enumerate() {
                if i > 0 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                let mut new = Vec::with_capacity(chunk.len());
                for old_pod in chunk {
                    let mut labels = old_pod.labels.clone();
                    labels.insert("pod-template-hash".into(), hash2.clone());
                    let req = CreateRequest { count: 1, labels };
                    new.extend(me.create(&req, Some(&hash2)));
                }
                // Wait for the new pods to be Ready (or gone) before retiring the old ones.
                while new
                    .iter()
                    .any(|p| !p.status().ready && me.pod(&p.name).is_some())
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                for old_pod in chunk {
                    me.delete(&old_pod.name, None);
                }
            }
        });
        (hash, count, task)
    }
}

fn default_labels(app: &str, index: usize, hash: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), app.to_string());
    labels.insert("index".to_string(), index.to_string());
    let parity = if index % 2 == 0 { "even" } else { "odd" };
    labels.insert("parity".to_string(), parity.to_string());
    labels.insert("pod-template-hash".to_string(), hash.to_string());
    labels
}
