//! podsim: a fake Kubernetes cluster whose pods are real shells.

fn main() {
    println!("podsim {}", env!("CARGO_PKG_VERSION"));
}
