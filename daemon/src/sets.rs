//! Pod sets that follow the cluster: for each set, kube's runtime watcher (list + watch, re-list
//! after a 410 or a dropped watch) on the set's namespace and label selector, with the cluster's
//! cached credentials. A pod that becomes Ready is registered as `SET/POD` (a row in `pods` and a
//! pod actor); a pod that is terminating or deleted is retired: its actor drains (the running
//! command finishes, nothing new is sent) and its row goes. After a restart the stored members
//! are back at once and the watcher's first list settles which are still there.
//!
//! The watch never waits for the database: a terminating member is drained the moment its
//! event arrives (its containers are about to stop), and every change that writes rows goes to
//! the set's worker, which applies them one at a time in the order the cluster made them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle};
use actix_web::web;
use futures_util::StreamExt;
use futures_util::future::{AbortHandle, Abortable};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use podwrangler::ProviderKind;
use podwrangler::api::{PodCreate, PodSetInfo, PodSetMember, PodState};
use tokio::sync::{mpsc, oneshot};

use crate::actors::registry::{DrainPod, StartPod, States};
use crate::api::error::ApiError;
use crate::server::AppState;
use crate::store::sets::PodSetRow;
use crate::store::{DeletePod, ListPods, NewPod};

/// How long one watch runs on the same credentials before they are resolved again (the
/// cluster cache refreshes short-lived tokens; the watcher then re-lists and reconciles).
const CREDENTIALS_REFRESH: Duration = Duration::from_secs(300);

/// Longest pause between attempts of a set whose watch cannot start.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How a set's watch stands.
#[derive(Clone, Debug)]
struct WatchStatus {
    /// `starting`, `watching` or `failing`.
    phase: &'static str,
    error: Option<String>,
}

/// A change to a set's members, applied in order by the set's worker.
enum Change {
    /// A Ready pod: register it (row and actor) unless it is a member or already terminating.
    Add(String),
    /// A terminating or deleted pod: drain its actor and remove its row.
    Retire(String),
    /// The set is deleted: retire every member, then answer.
    RetireAll(oneshot::Sender<()>),
}

/// One set: its definition, its members (pod name to alias), its watch and its worker.
pub struct PodSet {
    pub row: PodSetRow,
    status: Mutex<WatchStatus>,
    members: Mutex<BTreeMap<String, String>>,
    /// Pods seen terminating or deleted whose retirement the worker has not done yet: an `Add`
    /// queued before they were seen terminating must not register them.
    doomed: Mutex<HashSet<String>>,
    changes: Mutex<Option<mpsc::UnboundedSender<Change>>>,
    abort: Mutex<Option<AbortHandle>>,
}

impl PodSet {
    fn new(row: PodSetRow, members: BTreeMap<String, String>) -> Arc<PodSet> {
        Arc::new(PodSet {
            row,
            status: Mutex::new(WatchStatus {
                phase: "starting",
                error: None,
            }),
            members: Mutex::new(members),
            doomed: Mutex::new(HashSet::new()),
            changes: Mutex::new(None),
            abort: Mutex::new(None),
        })
    }

    /// Queues a change for the set's worker (dropped once the set is deleted).
    fn change(&self, change: Change) {
        if let Some(tx) = self
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = tx.send(change);
        }
    }

    /// Marks a pod terminating; answers whether it was news.
    fn doom(&self, pod: &str) -> bool {
        self.doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pod.to_owned())
    }

    fn is_doomed(&self, pod: &str) -> bool {
        self.doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(pod)
    }

    fn alias_of(&self, pod: &str) -> String {
        format!("{}/{pod}", self.row.name)
    }

    fn set_status(&self, phase: &'static str, error: Option<String>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = WatchStatus { phase, error };
    }

    fn members(&self) -> BTreeMap<String, String> {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Members not seen terminating: those a command may go to.
    fn live_members(&self) -> BTreeMap<String, String> {
        let doomed = self
            .doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut members = self.members();
        members.retain(|pod, _| !doomed.contains(pod));
        members
    }

    fn is_member(&self, pod: &str) -> bool {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(pod)
    }

    fn stop(&self) {
        if let Some(a) = self.abort.lock().unwrap_or_else(|e| e.into_inner()).take() {
            a.abort();
        }
    }

    pub fn info(&self) -> PodSetInfo {
        let status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        PodSetInfo {
            name: self.row.name.clone(),
            cluster: self.row.cluster.clone(),
            namespace: self.row.namespace.clone(),
            selector: self.row.selector.clone(),
            container: self.row.container.clone(),
            created_at: self.row.created(),
            actor: self.row.actor.clone(),
            members: self.live_members().len(),
            watch: status.phase.to_owned(),
            error: status.error,
        }
    }
}

/// Every pod set of the daemon and the arbiter their watches run on.
pub struct SetManager {
    sets: Mutex<BTreeMap<String, Arc<PodSet>>>,
    arbiter: ArbiterHandle,
}

impl Default for SetManager {
    fn default() -> Self {
        SetManager {
            sets: Mutex::new(BTreeMap::new()),
            arbiter: Arbiter::new().handle(),
        }
    }
}

impl SetManager {
    pub fn get(&self, name: &str) -> Option<Arc<PodSet>> {
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<PodSet>> {
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The aliases of a set's members now, or `None` when there is no such set.
    pub fn member_aliases(&self, name: &str) -> Option<Vec<String>> {
        self.get(name)
            .map(|s| s.live_members().into_values().collect::<Vec<_>>())
    }

    /// Starts following a set whose members (pod name to alias) are already registered.
    pub fn start(
        &self,
        state: web::Data<AppState>,
        row: PodSetRow,
        members: BTreeMap<String, String>,
    ) -> Arc<PodSet> {
        let set = PodSet::new(row, members);
        let (abort, registration) = AbortHandle::new_pair();
        *set.abort.lock().unwrap_or_else(|e| e.into_inner()) = Some(abort);
        let (tx, rx) = mpsc::unbounded_channel();
        *set.changes.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(set.row.name.clone(), set.clone());
        // The worker is not aborted with the watch: it ends once the set's queue is closed
        // and every change in it is done.
        self.arbiter
            .spawn(apply_changes(state.clone(), set.clone(), rx));
        let follower = Abortable::new(follow(state, set.clone()), registration);
        self.arbiter.spawn(async move {
            let _ = follower.await;
        });
        set
    }

    /// Stops following a set and forgets it; answers it so its members can be retired.
    pub fn remove(&self, name: &str) -> Option<Arc<PodSet>> {
        let set = self
            .sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)?;
        set.stop();
        Some(set)
    }

    /// Stops every watch (daemon shutdown); members stay registered for the next start.
    pub fn stop_all(&self) {
        for set in self.list() {
            set.stop();
        }
    }
}

/// Starts the watch of every stored set (daemon start), after the stored pods are loaded.
pub async fn start_all(state: &web::Data<AppState>) -> Result<usize, ApiError> {
    let rows = state
        .store
        .send(crate::store::sets::ListSets)
        .await
        .map_err(crate::api::mailbox)?
        .map_err(crate::api::db_err)?;
    let pods = state
        .store
        .send(ListPods)
        .await
        .map_err(crate::api::mailbox)?
        .map_err(crate::api::db_err)?;
    let mut by_set: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for p in pods {
        if let Some((set, pod)) = p.alias.split_once('/') {
            by_set
                .entry(set.to_owned())
                .or_default()
                .insert(pod.to_owned(), p.alias.clone());
        }
    }
    let n = rows.len();
    for row in rows {
        let members = by_set.remove(&row.name).unwrap_or_default();
        state.sets.start(state.clone(), row, members);
    }
    // Members of sets that no longer exist (deleted while a retirement failed) are retired.
    for (_, members) in by_set {
        for alias in members.into_values() {
            retire_alias(state, &alias).await;
        }
    }
    Ok(n)
}

/// The members of a set with their live states.
pub async fn members_of(state: &AppState, set: &PodSet) -> Result<Vec<PodSetMember>, ApiError> {
    let states = state
        .registry
        .send(States)
        .await
        .map_err(crate::api::mailbox)?;
    Ok(set
        .live_members()
        .into_iter()
        .map(|(pod, alias)| PodSetMember {
            state: states.get(&alias).cloned().unwrap_or(PodState::Idle),
            alias,
            pod,
        })
        .collect())
}

/// Retires every member of a set that is being deleted (its watch already stopped), after the
/// changes queued before, so a pod being registered as the set goes is retired too.
pub async fn retire_members(state: &AppState, set: &PodSet) {
    let queue = set.changes.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(queue) = queue {
        let (done, finished) = oneshot::channel();
        if queue.send(Change::RetireAll(done)).is_ok() {
            drop(queue);
            if finished.await.is_ok() {
                return;
            }
        }
    }
    retire_all(state, set).await;
}

async fn retire_all(state: &AppState, set: &PodSet) {
    let members = std::mem::take(&mut *set.members.lock().unwrap_or_else(|e| e.into_inner()));
    for alias in members.into_values() {
        retire_alias(state, &alias).await;
    }
}

/// The set's worker: applies membership changes one at a time, in order.
async fn apply_changes(
    state: web::Data<AppState>,
    set: Arc<PodSet>,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    while let Some(change) = changes.recv().await {
        match change {
            Change::Add(pod) => {
                if !set.is_member(&pod) && !set.is_doomed(&pod) {
                    register(&state, &set, &pod).await;
                    // Seen terminating while it was being registered: drain it now, not when
                    // its queued retirement comes up.
                    if set.is_doomed(&pod) {
                        state.registry.do_send(DrainPod {
                            alias: set.alias_of(&pod),
                        });
                    }
                }
            }
            Change::Retire(pod) => {
                retire(&state, &set, &pod).await;
                set.doomed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&pod);
            }
            Change::RetireAll(done) => {
                retire_all(&state, &set).await;
                let _ = done.send(());
            }
        }
    }
}

/// Follows one set until aborted: watch, and after a failure wait (growing, capped) and again.
async fn follow(state: web::Data<AppState>, set: Arc<PodSet>) {
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        let result = watch_once(&state, &set).await;
        if let Err(e) = result {
            tracing::warn!(set = %set.row.name, error = %e, "pod set watch failed; retrying");
            set.set_status("failing", Some(e));
            // A watch that ran a good while before failing starts over from a short pause.
            if started.elapsed() > MAX_RETRY_DELAY {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let delay = Duration::from_millis(250u64.saturating_mul(1 << failures.min(7)))
                .min(MAX_RETRY_DELAY);
            tokio::time::sleep(delay).await;
        }
    }
}

/// One watch with one set of credentials, until they are due for a refresh (`Ok`) or it
/// cannot go on (`Err`, shown on the set).
async fn watch_once(state: &web::Data<AppState>, set: &Arc<PodSet>) -> Result<(), String> {
    let creds = state
        .clusters
        .credentials_of(&set.row.cluster)
        .await
        .map_err(|e| e.to_string())?;
    let config = podwrangler::kubeconfig::client_config(&creds).map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(config).map_err(|e| {
        format!(
            "cannot build a client for cluster {:?}: {e}",
            set.row.cluster
        )
    })?;
    let api: Api<Pod> = Api::namespaced(client, &set.row.namespace);
    let config = watcher::Config::default().labels(&set.row.selector);
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let refresh_at = tokio::time::Instant::now() + CREDENTIALS_REFRESH;
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut consecutive_errors = 0u32;
    loop {
        let next = match tokio::time::timeout_at(refresh_at, stream.next()).await {
            Err(_) => return Ok(()),
            Ok(None) => return Err("the watch ended".into()),
            Ok(Some(next)) => next,
        };
        match next {
            Ok(event) => {
                consecutive_errors = 0;
                match event {
                    Event::Init => listed.clear(),
                    Event::InitApply(pod) => {
                        if let Some(name) = pod.metadata.name.clone() {
                            listed.insert(name);
                        }
                        apply(state, set, &pod);
                    }
                    Event::InitDone => {
                        // Members the list did not return are gone (deleted while nobody
                        // watched, or while the watch was down).
                        for (pod, _) in set.members() {
                            if !listed.contains(&pod) {
                                doom(state, set, &pod);
                            }
                        }
                        listed.clear();
                        set.set_status("watching", None);
                    }
                    Event::Apply(pod) => apply(state, set, &pod),
                    Event::Delete(pod) => {
                        if let Some(name) = pod.metadata.name.as_deref() {
                            doom(state, set, name);
                        }
                    }
                }
            }
            Err(e) => {
                consecutive_errors += 1;
                let message = format!("watching pods: {e}");
                set.set_status("failing", Some(message.clone()));
                // Errors the watcher keeps retrying (with its own backoff) may be lasting: an
                // expired token. After a few, resolve the credentials again.
                if consecutive_errors >= 5 {
                    return Err(message);
                }
            }
        }
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod the watch reports: register it once Ready, retire it once terminating.
fn apply(state: &AppState, set: &PodSet, pod: &Pod) {
    let Some(name) = pod.metadata.name.as_deref() else {
        return;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        doom(state, set, name);
    } else if is_ready(pod) && !set.is_member(name) {
        set.change(Change::Add(name.to_owned()));
    }
}

/// A pod that is terminating or gone: no command goes to it from now on (its actor drains at
/// once, before any database work), and its retirement is queued.
fn doom(state: &AppState, set: &PodSet, pod: &str) {
    if set.doom(pod) {
        state.registry.do_send(DrainPod {
            alias: set.alias_of(pod),
        });
        set.change(Change::Retire(pod.to_owned()));
    }
}

async fn register(state: &web::Data<AppState>, set: &Arc<PodSet>, pod: &str) {
    let alias = set.alias_of(pod);
    if let Err(e) = crate::api::validate::alias(&alias) {
        tracing::warn!(set = %set.row.name, %pod, error = %e, "pod not added to its set: its alias would be invalid");
        return;
    }
    let create = PodCreate {
        alias: alias.clone(),
        provider: ProviderKind::Kubernetes,
        pod_name: Some(pod.to_owned()),
        namespace: Some(set.row.namespace.clone()),
        container: set.row.container.clone(),
        cluster: Some(set.row.cluster.clone()),
        ..Default::default()
    };
    let endpoint = match crate::api::pods::endpoint_for_create(&create) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(set = %set.row.name, %pod, error = %e, "pod not added to its set");
            return;
        }
    };
    let new = NewPod {
        alias: alias.clone(),
        provider: ProviderKind::Kubernetes,
        identity: endpoint.identity,
        config: endpoint.provider,
        token: None,
        client_key: None,
        tags: Vec::new(),
    };
    match crate::api::pods::insert(state, new).await {
        Ok(_) => {}
        // Registered before a restart: the stored member was started with the others; make
        // sure it runs.
        Err(ApiError::PodExists(_)) => {
            let row = state
                .store
                .send(crate::store::GetPod {
                    alias: alias.clone(),
                })
                .await;
            if let Ok(Ok(Some(row))) = row {
                let known = state
                    .registry
                    .send(crate::actors::registry::Lookup(alias.clone()))
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                if !known {
                    let _ = state
                        .registry
                        .send(StartPod {
                            alias: alias.clone(),
                            endpoint: row.endpoint(),
                        })
                        .await;
                }
            }
        }
        Err(e) => {
            tracing::warn!(set = %set.row.name, %pod, error = %e, "pod not added to its set");
            return;
        }
    }
    set.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pod.to_owned(), alias.clone());
    tracing::info!(set = %set.row.name, %alias, "pod set member added");
}

async fn retire(state: &AppState, set: &PodSet, pod: &str) {
    let alias = set
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(pod);
    if let Some(alias) = alias {
        retire_alias(state, &alias).await;
        tracing::info!(set = %set.row.name, %alias, "pod set member retired");
    }
}

/// Forgets a member: no new command goes to it, the running one finishes, its row goes (its
/// history stays, under its set and pod name).
async fn retire_alias(state: &AppState, alias: &str) {
    let _ = state
        .registry
        .send(DrainPod {
            alias: alias.to_owned(),
        })
        .await;
    match state
        .store
        .send(DeletePod {
            alias: alias.to_owned(),
        })
        .await
    {
        Ok(Ok(())) | Ok(Err(crate::store::StoreError::NotFound)) => {}
        Ok(Err(e)) => {
            tracing::warn!(%alias, error = %e, "cannot remove a retired set member's row")
        }
        Err(e) => {
            tracing::warn!(%alias, error = %e, "store unavailable to remove a retired set member")
        }
    }
}
