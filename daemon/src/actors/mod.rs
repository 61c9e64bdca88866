//! The daemon's actors: one PodActor per pod, and the RegistryActor that owns them.

pub mod pod;
pub mod registry;
