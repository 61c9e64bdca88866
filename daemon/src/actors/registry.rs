//! RegistryActor: alias -> pod actor. Starts, replaces and retires pod actors, spreads them over
//! the pod arbiters and keeps the last state each one reported.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use podwrangler::PodEndpoint;
use podwrangler::api::PodState;

use super::pod::{Drain, PodActor, PodStateChanged, Retire};
use crate::config::PodSettings;
use crate::store::StoreActor;

struct PodEntry {
    addr: Addr<PodActor>,
    generation: u64,
    state: PodState,
}

/// Owns every pod actor.
pub struct RegistryActor {
    store: Addr<StoreActor>,
    settings: Arc<PodSettings>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    next_generation: u64,
    pods: HashMap<String, PodEntry>,
}

impl RegistryActor {
    pub fn new(
        store: Addr<StoreActor>,
        settings: Arc<PodSettings>,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        assert!(!arbiters.is_empty(), "at least one pod arbiter is needed");
        RegistryActor {
            store,
            settings,
            arbiters,
            next_arbiter: 0,
            next_generation: 1,
            pods: HashMap::new(),
        }
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
}

/// Start a pod's actor, replacing (and retiring) any actor already under that alias.
#[derive(Message)]
#[rtype(result = "PodState")]
pub struct StartPod {
    pub alias: String,
    pub endpoint: PodEndpoint,
}

/// Retire and forget a pod's actor. Answered when its session is closed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopPod {
    pub alias: String,
}

/// Forget a pod whose Kubernetes pod is terminating or gone: its actor drains (the running
/// command finishes, nothing else is sent) and stops. Answers whether there was such a pod.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct DrainPod {
    pub alias: String,
}

/// The actor of one pod.
#[derive(Message)]
#[rtype(result = "Option<Addr<PodActor>>")]
pub struct Lookup(pub String);

/// The actors of many pods, in the order asked; `None` where there is no such pod.
#[derive(Message)]
#[rtype(result = "Vec<(String, Option<Addr<PodActor>>)>")]
pub struct LookupMany(pub Vec<String>);

/// Every pod's last reported state.
#[derive(Message)]
#[rtype(result = "HashMap<String, PodState>")]
pub struct States;

/// Number of pods in each state, for `/health`.
#[derive(Message)]
#[rtype(result = "BTreeMap<String, usize>")]
pub struct StateCounts;

/// Retire every pod (daemon shutdown). Answered when all sessions are closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RetireAll;

impl Handler<StartPod> for RegistryActor {
    type Result = MessageResult<StartPod>;

    fn handle(&mut self, msg: StartPod, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(old) = self.pods.remove(&msg.alias) {
            old.addr.do_send(Retire);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        let settings = self.settings.clone();
        let store = self.store.clone();
        let me = ctx.address().recipient();
        let alias = msg.alias.clone();
        let endpoint = msg.endpoint;
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
            PodActor::new(alias, generation, endpoint, settings, store, me)
        });
        let state = if self.settings.connect_on_start {
            PodState::Connecting
        } else {
            PodState::Idle
        };
        self.pods.insert(
            msg.alias,
            PodEntry {
                addr,
                generation,
                state: state.clone(),
            },
        );
        MessageResult(state)
    }
}

impl Handler<StopPod> for RegistryActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: StopPod, _: &mut Context<Self>) -> Self::Result {
        let entry = self.pods.remove(&msg.alias);
        Box::pin(async move {
            match entry {
                Some(e) => {
                    let _ = e.addr.send(Retire).await;
                    true
                }
                None => false,
            }
        })
    }
}

impl Handler<DrainPod> for RegistryActor {
    type Result = bool;

    fn handle(&mut self, msg: DrainPod, _: &mut Context<Self>) -> bool {
        match self.pods.remove(&msg.alias) {
            Some(e) => {
                e.addr.do_send(Drain);
                true
            }
            None => false,
        }
    }
}

impl Handler<Lookup> for RegistryActor {
    type Result = Option<Addr<PodActor>>;

    fn handle(&mut self, msg: Lookup, _: &mut Context<Self>) -> Self::Result {
        self.pods.get(&msg.0).map(|e| e.addr.clone())
    }
}

impl Handler<LookupMany> for RegistryActor {
    type Result = MessageResult<LookupMany>;

    fn handle(&mut self, msg: LookupMany, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            msg.0
                .into_iter()
                .map(|a| {
                    let addr = self.pods.get(&a).map(|e| e.addr.clone());
                    (a, addr)
                })
                .collect(),
        )
    }
}

impl Handler<States> for RegistryActor {
    type Result = MessageResult<States>;

    fn handle(&mut self, _: States, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.pods
                .iter()
                .map(|(k, v)| (k.clone(), v.state.clone()))
                .collect(),
        )
    }
}

impl Handler<StateCounts> for RegistryActor {
    type Result = MessageResult<StateCounts>;

    fn handle(&mut self, _: StateCounts, _: &mut Context<Self>) -> Self::Result {
        let mut counts = BTreeMap::new();
        for e in self.pods.values() {
            *counts.entry(e.state.name().to_owned()).or_insert(0) += 1;
        }
        MessageResult(counts)
    }
}

impl Handler<PodStateChanged> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: PodStateChanged, _: &mut Context<Self>) {
        // A retired actor may still report; only the current generation counts.
        if let Some(e) = self.pods.get_mut(&msg.alias)
            && e.generation == msg.generation
        {
            e.state = msg.state;
        }
    }
}

impl Handler<RetireAll> for RegistryActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: RetireAll, _: &mut Context<Self>) -> Self::Result {
        let addrs: Vec<Addr<PodActor>> = self.pods.drain().map(|(_, e)| e.addr).collect();
        Box::pin(async move {
            futures_util::future::join_all(addrs.iter().map(|a| a.send(Retire))).await;
        })
    }
}
