//! podwranglerd: the PodWrangler daemon.

fn main() {
    println!("podwranglerd {}", env!("CARGO_PKG_VERSION"));
}
