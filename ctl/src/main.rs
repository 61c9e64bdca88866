//! pwctl: the PodWrangler command-line client.

fn main() {
    println!("pwctl {}", env!("CARGO_PKG_VERSION"));
}
